// Small helpers shared by the manage pages (rules, settings, recommendations):
// API field errors, an inline confirmation, and list/number parsing.
import { ApiError, errorMessage } from "../../api/client";
import f from "./forms.module.css";

export { errorMessage };

/** The API's 400 message for `field` (or a field under it, "alert_recipients.2"). */
export function fieldErrorFor(error: unknown, field: string): string | null {
  if (!(error instanceof ApiError) || !error.field) return null;
  const head = error.field.split(".")[0];
  return head === field ? error.message : null;
}

/** Whether the error names a field among `fields` (so it shows next to it, not on top). */
export function isFieldError(error: unknown, fields: readonly string[]): boolean {
  return fields.some((f) => fieldErrorFor(error, f) !== null);
}

/** The error text under an input, linked by id for aria-describedby. */
export function FieldError(props: { id: string; message: string | null | undefined }) {
  if (!props.message) return null;
  return (
    <p id={props.id} className="field-error" role="alert">
      {props.message}
    </p>
  );
}

/** A form-level error (one that names no field of the form). */
export function FormError(props: { error: unknown; fields?: readonly string[] }) {
  if (!props.error) return null;
  if (props.fields && isFieldError(props.error, props.fields)) return null;
  return (
    <p className={f.formError} role="alert">
      {errorMessage(props.error)}
    </p>
  );
}

/** "" → null, else the integer (NaN when not a number: the API then names the field). */
export function parseOptionalInt(value: string): number | null {
  const trimmed = value.trim();
  if (trimmed === "") return null;
  return Number(trimmed);
}

/** The trimmed text, or null when empty ("any"). */
export function emptyToNull(value: string): string | null {
  const trimmed = value.trim();
  return trimmed === "" ? null : trimmed;
}
