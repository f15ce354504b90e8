import type { CtyType } from "./values.js";

/** One attribute of a schema block. Every attribute carries a description: the docs and CDKTF bindings use it. */
export interface AttributeSchema {
  name: string;
  type: CtyType;
  description: string;
  required?: boolean;
  optional?: boolean;
  computed?: boolean;
  sensitive?: boolean;
}

/** A block nested once (`timeouts { ... }`): its value is an object, or null when the block is absent. */
export interface NestedBlockSchema {
  typeName: string;
  block: BlockSchema;
}

export interface BlockSchema {
  description: string;
  attributes: AttributeSchema[];
  blocks?: NestedBlockSchema[];
}

/** The cty object type of a block's value: its attributes and its nested blocks (as objects). */
export function objectType(block: BlockSchema): CtyType {
  const members: Record<string, CtyType> = {};
  for (const attr of block.attributes) members[attr.name] = attr.type;
  for (const nested of block.blocks ?? []) members[nested.typeName] = objectType(nested.block);
  return ["object", members];
}

const MARKDOWN = 1;
const NESTING_SINGLE = 1;

/** tfplugin6 Schema.Block, as proto-loader takes it. */
interface BlockMessage {
  version: number;
  description: string;
  description_kind: number;
  attributes: Record<string, unknown>[];
  block_types: { type_name: string; block: BlockMessage; nesting: number }[];
}

function blockMessage(block: BlockSchema): BlockMessage {
  return {
    version: 0,
    description: block.description,
    description_kind: MARKDOWN,
    attributes: block.attributes.map((attr) => ({
      name: attr.name,
      type: Buffer.from(JSON.stringify(attr.type)),
      description: attr.description,
      description_kind: MARKDOWN,
      required: attr.required ?? false,
      optional: attr.optional ?? false,
      computed: attr.computed ?? false,
      sensitive: attr.sensitive ?? false,
    })),
    block_types: (block.blocks ?? []).map((nested) => ({
      type_name: nested.typeName,
      block: blockMessage(nested.block),
      nesting: NESTING_SINGLE,
    })),
  };
}

/** The tfplugin6 Schema message for a block. */
export function schemaMessage(block: BlockSchema) {
  return { version: 0, block: blockMessage(block) };
}
