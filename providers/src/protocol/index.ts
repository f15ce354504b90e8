/** Terraform's side of the wire: values (msgpack with unknowns), schemas and diagnostics, as tfplugin6 wants them. */
export {
  type Diagnostic,
  diagnosticMessage,
  diagnosticOf,
  error,
  hasErrors,
  warning,
} from "./diagnostics.js";
export {
  type AttributeSchema,
  type BlockSchema,
  type NestedBlockSchema,
  objectType,
  schemaMessage,
} from "./schema.js";
export {
  type CtyType,
  decodeValue,
  encodeValue,
  fromJsonState,
  isUnknown,
  type ObjectValue,
  UNKNOWN,
  type Unknown,
  type Value,
} from "./values.js";
