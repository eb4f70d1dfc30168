import { useEffect, useState, type ReactNode } from "react";
import { Link, NavLink, useLocation, useNavigate } from "react-router-dom";
import type { Me } from "../api/types";
import { useSession } from "../auth/SessionContext";

const NAV = [
  { label: "Overview", path: "" },
  { label: "Requests", path: "/requests" },
  { label: "Failures", path: "/failures" },
  { label: "Anomalies", path: "/anomalies" },
  { label: "Recommendations", path: "/recommendations" },
  { label: "Rules", path: "/rules" },
  { label: "Settings", path: "/settings" },
] as const;

/** The section of an org URL ("/orgs/o1/anomalies/x" → "/anomalies"), kept on org switch. */
function sectionOf(pathname: string): string {
  const match = /^\/orgs\/[^/]+(\/[^/]+)?/.exec(pathname);
  return match?.[1] ?? "";
}

function OrgSwitcher({ me, orgId }: { me: Me; orgId: string }) {
  const navigate = useNavigate();
  const location = useLocation();
  const current = me.orgs.find((o) => o.id === orgId);
  if (me.orgs.length <= 1) {
    return <span className="org-name">{current?.name ?? ""}</span>;
  }
  return (
    <select
      className="org-select"
      aria-label="Organisation"
      value={orgId}
      onChange={(e) => navigate(`/orgs/${e.target.value}${sectionOf(location.pathname)}`)}
    >
      {me.orgs.map((o) => (
        <option key={o.id} value={o.id}>
          {o.name}
        </option>
      ))}
    </select>
  );
}

/**
 * Header (Lectr, organisation switcher, who is signed in, "Sign out") and, inside an
 * organisation, the main navigation; under 760 px the nav folds behind a "Menu" button.
 */
export function AppShell({
  me,
  orgId,
  children,
}: {
  me: Me | null;
  orgId: string | null;
  children: ReactNode;
}) {
  const session = useSession();
  const location = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const [signingOut, setSigningOut] = useState(false);
  useEffect(() => setMenuOpen(false), [location.pathname]);
  const who = me?.operator ? "Operator" : (me?.email ?? "");
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <div className="header-left">
          <Link className="brand" to={orgId ? `/orgs/${orgId}` : "/"} aria-label="Lectr home">
            <span className="brand-mark" aria-hidden="true">
              L
            </span>
            <span className="brand-name">Lectr</span>
          </Link>
          {me && orgId && <OrgSwitcher me={me} orgId={orgId} />}
        </div>
        <div className="header-right">
          {who && (
            <span className="who" title={who}>
              {who}
            </span>
          )}
          <button
            type="button"
            className="button button-ghost"
            disabled={signingOut}
            onClick={() => {
              setSigningOut(true);
              void session.signOut().finally(() => setSigningOut(false));
            }}
          >
            Sign out
          </button>
          {orgId && (
            <button
              type="button"
              className="button button-ghost menu-button"
              aria-expanded={menuOpen}
              aria-controls="main-nav"
              onClick={() => setMenuOpen((open) => !open)}
            >
              Menu
            </button>
          )}
        </div>
      </header>
      <div className={`app-body${orgId ? "" : " no-nav"}`}>
        {orgId && (
          <nav id="main-nav" aria-label="Main" className={`main-nav${menuOpen ? " open" : ""}`}>
            <ul>
              {NAV.map((item) => (
                <li key={item.label}>
                  <NavLink to={`/orgs/${orgId}${item.path}`} end={item.path === ""}>
                    {item.label}
                  </NavLink>
                </li>
              ))}
            </ul>
          </nav>
        )}
        <main id="main" className="main" tabIndex={-1}>
          {children}
        </main>
      </div>
    </div>
  );
}
