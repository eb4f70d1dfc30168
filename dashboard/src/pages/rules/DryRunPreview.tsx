// The answer of POST /rules/dry-run: what a draft would have matched, and its cost.
import type { Schemas } from "../../api/types";
import { formatNumber, formatTime, formatUsd } from "../../format";
import f from "../settings/forms.module.css";

type DryRun = Schemas["DryRun"];

export default function DryRunPreview(props: { result: DryRun; stale: boolean }) {
  const { result } = props;
  const unpriced = result.by_model.reduce((n, m) => n + m.unpriced_requests, 0);
  const change = result.cost_after_usd - result.cost_before_usd;
  return (
    <section className={f.dryRunResult} aria-label="Preview">
      <h3>Preview</h3>
      {props.stale && (
        <p className="notice notice-warning">
          The draft changed since this preview: click Preview again to see its figures.
        </p>
      )}
      <p className="muted">
        {formatTime(result.window_start)} – {formatTime(result.window_end)}, from hourly
        rollups, at current prices.
      </p>
      <dl className={f.statRow}>
        <div>
          <dt>Matched requests</dt>
          <dd data-testid="dry-run-matched">{formatNumber(result.matched_requests)}</dd>
        </div>
        <div>
          <dt>Cost before</dt>
          <dd data-testid="dry-run-before">{formatUsd(result.cost_before_usd)}</dd>
        </div>
        <div>
          <dt>Cost after</dt>
          <dd data-testid="dry-run-after">{formatUsd(result.cost_after_usd)}</dd>
        </div>
        <div>
          <dt>{change <= 0 ? "Saving" : "Extra cost"}</dt>
          <dd data-testid="dry-run-change">{formatUsd(Math.abs(change))}</dd>
        </div>
      </dl>
      {result.matched_requests === 0 ? (
        <p>
          No request of the last 7 days would have matched this rule (after the enabled
          rules before it).
        </p>
      ) : (
        <div className="table-wrap">
          <table className={`table ${f.dataTable}`}>
            <caption className="sr-only">Preview per model</caption>
            <thead>
              <tr>
                <th scope="col">Model sent for</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Cost before
                </th>
                <th scope="col" className="num">
                  Cost after
                </th>
                <th scope="col" className="num">
                  Unpriced requests
                </th>
              </tr>
            </thead>
            <tbody>
              {result.by_model.map((m) => (
                <tr key={m.model}>
                  <th scope="row">{m.model === "" ? "unknown" : m.model}</th>
                  <td className="num">{formatNumber(m.requests)}</td>
                  <td className="num">{formatUsd(m.cost_before_usd)}</td>
                  <td className="num">{formatUsd(m.cost_after_usd)}</td>
                  <td className="num">{formatNumber(m.unpriced_requests)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <td className="num">{formatNumber(result.matched_requests)}</td>
                <td className="num">{formatUsd(result.cost_before_usd)}</td>
                <td className="num">{formatUsd(result.cost_after_usd)}</td>
                <td className="num">{formatNumber(unpriced)}</td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}
      {unpriced > 0 && (
        <p className={f.hint}>
          {formatNumber(unpriced)} unpriced request{unpriced === 1 ? "" : "s"} (no current
          price for the model sent for or the target) are left out of both costs.
        </p>
      )}
      <p className={f.hint}>
        Rollups record the provider and model a request was sent to; a provider change
        the proxy skips (the caller has no key for the target) is not reflected.
      </p>
    </section>
  );
}
