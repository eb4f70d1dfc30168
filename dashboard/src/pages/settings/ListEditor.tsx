// An editable list of strings (alert recipients, webhook URLs): items with Remove, and
// an input with Add. The text still in the input is the caller's ("pending"), so a save
// can include what was typed but not added.
import { useId, type KeyboardEvent } from "react";
import { FieldError } from "./shared";
import f from "./forms.module.css";

export function withPending(items: readonly string[], pending: string): string[] {
  const extra = pending.trim();
  return extra && !items.includes(extra) ? [...items, extra] : [...items];
}

export default function ListEditor(props: {
  label: string; // e.g. "Alert recipients"
  itemNoun: string; // e.g. "recipient"
  items: string[];
  onChange: (items: string[]) => void;
  pending: string;
  onPending: (value: string) => void;
  inputType: "email" | "url";
  placeholder: string;
  error: string | null;
  errorIndex: number | null; // the item the error names, if any
  readOnly: boolean;
  emptyText: string;
}) {
  const id = useId();
  const errorId = `${id}-error`;

  function add() {
    const next = withPending(props.items, props.pending);
    props.onChange(next);
    props.onPending("");
  }

  function onKeyDown(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === "Enter") {
      event.preventDefault();
      add();
    }
  }

  return (
    <div className={`field ${f.listEditor}`} role="group" aria-labelledby={`${id}-label`}>
      <span id={`${id}-label`} className={f.label}>
        {props.label}
      </span>
      {props.items.length === 0 ? (
        <p className="muted">{props.emptyText}</p>
      ) : (
        <ul className={f.listItems}>
          {props.items.map((item, index) => (
            <li key={item} className={props.errorIndex === index ? f.invalid : undefined}>
              <span className={f.listValue}>{item}</span>
              {!props.readOnly && (
                <button
                  type="button"
                  className="button button-small button-ghost"
                  aria-label={`Remove ${item}`}
                  onClick={() => props.onChange(props.items.filter((_, i) => i !== index))}
                >
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {!props.readOnly && (
        <div className={f.listAdd}>
          <label htmlFor={`${id}-add`} className="sr-only">
            New {props.itemNoun}
          </label>
          <input
            id={`${id}-add`}
            type={props.inputType}
            value={props.pending}
            placeholder={props.placeholder}
            aria-invalid={props.error ? true : undefined}
            aria-describedby={props.error ? errorId : undefined}
            onChange={(e) => props.onPending(e.target.value)}
            onKeyDown={onKeyDown}
          />
          <button type="button" className="button button-small" onClick={add} aria-label={`Add ${props.itemNoun}`}>
            Add
          </button>
        </div>
      )}
      <FieldError id={errorId} message={props.error} />
    </div>
  );
}
