/**
 * The user's value as an error message quotes it: strings in double quotes, numbers and booleans as written,
 * other JSON as JSON, cut short so one huge value cannot swamp the message.
 */
export function show(value: unknown): string {
  let text: string | undefined;
  if (typeof value === "number" || typeof value === "boolean") text = String(value);
  else {
    try {
      text = JSON.stringify(value);
    } catch {
      // A BigInt or a cycle: fall back to naming the type.
    }
  }
  if (text === undefined) return `a ${typeof value}`;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
