// Test helpers of the manage pages' tests.
import type { UserEvent } from "@testing-library/user-event";

/** Replaces an input's value as a paste (fast), firing the events React listens to. */
export async function fill(user: UserEvent, element: HTMLElement, text: string): Promise<void> {
  await user.clear(element);
  if (text) {
    await user.click(element);
    await user.paste(text);
  }
}
