import type { ReactNode } from "react";

/** A figure with its label and a line of context, in the Overview's card grid. */
export function StatCard({
  label,
  value,
  detail,
  tone,
  children,
}: {
  label: string;
  value: ReactNode;
  detail?: ReactNode;
  tone?: "good" | "warning" | "danger";
  children?: ReactNode;
}) {
  return (
    <section className={`card stat-card${tone ? ` stat-${tone}` : ""}`} aria-label={label}>
      <h2 className="stat-label">{label}</h2>
      <div className="stat-value">{value}</div>
      {detail && <div className="stat-detail">{detail}</div>}
      {children}
    </section>
  );
}
