/**
 * Where `value` departs from a JSON Schema, as paths and reasons: the subset the API's documented answers use
 * (type, enum, properties, required, additionalProperties, items, anyOf, oneOf). Enough to catch a field added to
 * an answer and not to its documentation, or documented and not sent, which is what drifts.
 */
export function departures(schema: Record<string, unknown>, value: unknown, path = "$"): string[] {
  const alternatives = (schema.anyOf ?? schema.oneOf) as Record<string, unknown>[] | undefined;
  if (alternatives) {
    const each = alternatives.map((s) => departures(s, value, path));
    return each.some((d) => d.length === 0)
      ? []
      : [`${path}: matches none of its alternatives: ${each.flat()[0]}`];
  }
  const types = schema.type === undefined ? [] : [schema.type].flat();
  if (types.length > 0 && !types.some((t) => isType(t as string, value))) {
    return [`${path}: ${JSON.stringify(value)} is not ${types.join(" or ")}`];
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value))
    return [`${path}: ${JSON.stringify(value)} is not in the enum`];
  if (Array.isArray(value) && schema.items) {
    return value.flatMap((item, i) =>
      departures(schema.items as Record<string, unknown>, item, `${path}[${i}]`),
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  const found: string[] = [];
  const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  for (const name of (schema.required ?? []) as string[]) {
    if (!(name in value)) found.push(`${path}.${name}: documented as required, not sent`);
  }
  for (const [name, field] of Object.entries(value)) {
    const documented = properties[name];
    if (documented) found.push(...departures(documented, field, `${path}.${name}`));
    else if (schema.additionalProperties === false) found.push(`${path}.${name}: sent, not documented`);
  }
  return found;
}

function isType(type: string, value: unknown): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    case "integer":
      return Number.isInteger(value);
    default:
      return typeof value === type;
  }
}
