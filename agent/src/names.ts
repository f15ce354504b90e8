/**
 * The one rule for the names Holdfast gives things: clusters, nodes, zones and racks in the config, volumes in the
 * spec, node ids in certificates and store records, hosts in the constructs. A name is also a file name, a path
 * segment in the store and a certificate's URI, so the rule keeps out `/`, `..`-only names and anything to escape.
 */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** The rule in words, for error messages: "must be ...". */
export const NAME_RULE = "1-63 letters, digits, '_', '-' or '.'";

export const isName = (text: string): boolean => NAME_PATTERN.test(text);
