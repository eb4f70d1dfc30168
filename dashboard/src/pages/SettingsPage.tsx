// Settings: keys, members and invites, alerts and latency, rate limits, Azure OpenAI.
// Viewers and members read; admins change; rate limits only operators.
import { useOrg } from "../auth/useOrg";
import { PageHeader } from "../components";
import AlertsSection from "./settings/AlertsSection";
import AzureSection from "./settings/AzureSection";
import KeysSection from "./settings/KeysSection";
import MembersSection from "./settings/MembersSection";
import RateLimitsSection from "./settings/RateLimitsSection";
import f from "./settings/forms.module.css";

const SECTIONS = [
  ["settings-keys", "Keys"],
  ["settings-members", "Members and invites"],
  ["settings-alerts", "Alerts and latency"],
  ["settings-limits", "Rate limits"],
  ["settings-azure", "Azure OpenAI"],
] as const;

export default function SettingsPage() {
  const { orgId, org, operator, can } = useOrg();
  const admin = can("admin");
  const owner = can("owner");
  return (
    <div>
      <PageHeader title="Settings" />
      <p className={`muted ${f.intro}`}>
        {org.name}: you are {org.role === "admin" || org.role === "owner" ? "an" : "a"} {org.role}
        {operator ? " (operator)" : ""}.
        {!admin && " Only admins change these settings."}
      </p>
      <nav className={f.sectionNav} aria-label="Settings sections">
        {SECTIONS.map(([id, label]) => (
          <a key={id} href={`#${id}`}>
            {label}
          </a>
        ))}
      </nav>
      <KeysSection orgId={orgId} admin={admin} />
      <MembersSection orgId={orgId} admin={admin} owner={owner} />
      <AlertsSection orgId={orgId} admin={admin} />
      <RateLimitsSection orgId={orgId} operator={operator} />
      <AzureSection orgId={orgId} admin={admin} />
    </div>
  );
}
