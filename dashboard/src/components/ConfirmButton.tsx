import { useState, type ReactNode } from "react";

/**
 * A button that asks before acting: the first click shows "Confirm" and "Cancel".
 * The first button is named `label` (e.g. "Delete", "Revoke"); the confirmation button is
 * named `confirmLabel` (default "Confirm").
 */
export function ConfirmButton({
  label,
  confirmLabel = "Confirm",
  question,
  onConfirm,
  disabled,
  pending,
  tone = "danger",
}: {
  label: string;
  confirmLabel?: string;
  question?: ReactNode;
  onConfirm: () => void | Promise<unknown>;
  disabled?: boolean;
  pending?: boolean;
  tone?: "danger" | "neutral";
}) {
  const [asking, setAsking] = useState(false);
  const cls = tone === "danger" ? "button button-danger" : "button";
  if (!asking) {
    return (
      <button type="button" className={cls} disabled={disabled || pending} onClick={() => setAsking(true)}>
        {pending ? `${label}…` : label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={`${label}: confirm`}>
      {question && <span className="confirm-question">{question}</span>}
      <button
        type="button"
        className={cls}
        onClick={() => {
          setAsking(false);
          void onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" className="button button-ghost" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
