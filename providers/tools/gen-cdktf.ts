/**
 * Generates the CDKTF bindings in providers/cdktf/generated.ts from the provider's own schema, as Terraform
 * reports it (`terraform providers schema -json` run on the built provider), so the bindings cannot drift from
 * the provider:
 *
 *   node --import tsx providers/tools/gen-cdktf.ts      (builds the provider first)
 *
 * Why not `cdktf get`: see providers/cdktf/README.md.
 */
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type CtyType,
  type ProviderSchema,
  ROOT,
  readProviderSchema,
  type SchemaBlock,
  SOURCE,
  VERSION,
} from "./provider-schema.js";

export const OUTPUT = join(ROOT, "providers/cdktf/generated.ts");

const camel = (snake: string) => snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const pascal = (snake: string) => camel(snake).replace(/^./, (c) => c.toUpperCase());
const doc = (text: string | undefined, indent = "  ") =>
  text ? `${indent}/** ${text.replaceAll("*/", "*\\/")} */\n` : "";

/** The TypeScript type of an input, the mapper that writes it, and the getter that reads it back as a reference. */
function typing(type: CtyType): {
  ts: string;
  mapper: string;
  getter: (name: string) => string;
  out: string;
} {
  const reference = (name: string) => `this.interpolationForAttribute("${name}")`;
  if (type === "string")
    return {
      ts: "string",
      mapper: "cdktf.stringToTerraform",
      getter: (n) => `this.getStringAttribute("${n}")`,
      out: "string",
    };
  if (type === "number")
    return {
      ts: "number",
      mapper: "cdktf.numberToTerraform",
      getter: (n) => `this.getNumberAttribute("${n}")`,
      out: "number",
    };
  if (type === "bool")
    return {
      ts: "boolean | cdktf.IResolvable",
      mapper: "cdktf.booleanToTerraform",
      getter: (n) => `this.getBooleanAttribute("${n}")`,
      out: "cdktf.IResolvable",
    };
  // `dynamic` (size: bytes or a size string): read back as a string token, which Terraform converts as needed.
  if (type === "dynamic")
    return {
      ts: "number | string",
      mapper: "cdktf.anyToTerraform",
      getter: (n) => `cdktf.Token.asString(${reference(n)})`,
      out: "string",
    };
  if (Array.isArray(type) && type[1] === "string" && (type[0] === "list" || type[0] === "set"))
    return {
      ts: "string[]",
      mapper: "cdktf.listMapper(cdktf.stringToTerraform, false)",
      getter: (n) => `this.getListAttribute("${n}")`,
      out: "string[]",
    };
  if (Array.isArray(type) && type[0] === "map" && type[1] === "string")
    return {
      ts: "{ [key: string]: string }",
      mapper: "cdktf.hashMapper(cdktf.stringToTerraform)",
      getter: (n) => `this.getStringMapAttribute("${n}")`,
      out: "{ [key: string]: string }",
    };
  return {
    ts: "cdktf.IResolvable",
    mapper: "cdktf.anyToTerraform",
    getter: reference,
    out: "cdktf.IResolvable",
  };
}

type Kind = "resource" | "data";

/** A config interface, a class with a reference getter per attribute, and the synthesis of the inputs. */
function emitBlock(typeName: string, block: SchemaBlock, kind: Kind): string {
  const className = kind === "data" ? `Data${pascal(typeName)}` : pascal(typeName);
  const base = kind === "data" ? "cdktf.TerraformDataSource" : "cdktf.TerraformResource";
  const attributes = Object.entries(block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const inputs = attributes.filter(([, a]) => a.required || a.optional);
  const blocks = Object.entries(block.block_types ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const required = inputs.some(([, a]) => a.required);
  let out = "";
  for (const [name, nested] of blocks) {
    out += `${doc(nested.block.description, "")}export interface ${className}${pascal(name)} {\n`;
    for (const [attr, spec] of Object.entries(nested.block.attributes ?? {}))
      out += `${doc(spec.description)}  readonly ${camel(attr)}?: ${typing(spec.type).ts};\n`;
    out += "}\n\n";
  }
  out += `export interface ${className}Config extends cdktf.TerraformMetaArguments {\n`;
  for (const [name, attr] of inputs)
    out += `${doc(attr.description)}  readonly ${camel(name)}${attr.required ? "" : "?"}: ${typing(attr.type).ts};\n`;
  for (const [name, nested] of blocks)
    out += `${doc(nested.block.description)}  readonly ${camel(name)}?: ${className}${pascal(name)};\n`;
  out += "}\n\n";
  out += `${doc(`${block.description ?? ""} Terraform ${kind === "data" ? "data source" : "resource"} \`${typeName}\`.`, "")}`;
  out += `export class ${className} extends ${base} {\n`;
  out += `  static readonly tfResourceType = "${typeName}";\n\n`;
  // Kept as a member only when synthesis reads it (a data source without inputs needs only its meta-arguments).
  const member = inputs.length + blocks.length > 0 ? "private readonly " : "";
  out += `  constructor(scope: Construct, id: string, ${member}input: ${className}Config${required ? "" : " = {}"}) {\n`;
  out += `    super(scope, id, {\n      terraformResourceType: "${typeName}",\n      terraformGeneratorMetadata: { providerName: "holdfast", providerVersion: "${VERSION}" },\n`;
  out += "      provider: input.provider,\n      dependsOn: input.dependsOn,\n      count: input.count,\n";
  out +=
    "      lifecycle: input.lifecycle,\n      provisioners: input.provisioners,\n      connection: input.connection,\n";
  out += "      forEach: input.forEach,\n    });\n  }\n\n";
  for (const [name, attr] of attributes) {
    const t = typing(attr.type);
    out += `${doc(attr.description)}  get ${camel(name)}(): ${t.out} {\n    return ${t.getter(name)};\n  }\n\n`;
  }
  out += "  protected override synthesizeAttributes(): Record<string, unknown> {\n    return {\n";
  for (const [name, attr] of inputs)
    out += `      ${name}: ${typing(attr.type).mapper}(this.input.${camel(name)}),\n`;
  for (const [name, nested] of blocks) {
    const fields = Object.entries(nested.block.attributes ?? {})
      .map(([attr, spec]) => `${attr}: ${typing(spec.type).mapper}(this.input.${camel(name)}.${camel(attr)})`)
      .join(", ");
    out += `      ${name}: this.input.${camel(name)} === undefined ? undefined : { ${fields} },\n`;
  }
  out += "    };\n  }\n}\n\n";
  return out;
}

function emitProvider(block: SchemaBlock): string {
  const attributes = Object.entries(block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  let out = "export interface HoldfastProviderConfig {\n";
  for (const [name, attr] of attributes)
    out += `${doc(attr.description)}  readonly ${camel(name)}?: ${typing(attr.type).ts};\n`;
  out += `${doc("Alias of this provider configuration, for a second cluster in one stack.")}  readonly alias?: string;\n}\n\n`;
  out += `${doc(`${block.description ?? ""} Terraform provider \`holdfast/holdfast\`.`, "")}`;
  out += "export class HoldfastProvider extends cdktf.TerraformProvider {\n";
  out += '  static readonly tfResourceType = "holdfast";\n  private aliasName?: string;\n\n';
  out +=
    "  constructor(scope: Construct, id: string, private readonly input: HoldfastProviderConfig = {}) {\n";
  out += `    super(scope, id, {\n      terraformResourceType: "holdfast",\n      terraformGeneratorMetadata: { providerName: "holdfast", providerVersion: "${VERSION}" },\n`;
  out += `      terraformProviderSource: "${SOURCE}",\n    });\n    this.aliasName = input.alias;\n  }\n\n`;
  out += "  override get alias(): string | undefined {\n    return this.aliasName;\n  }\n\n";
  out += "  override set alias(value: string | undefined) {\n    this.aliasName = value;\n  }\n\n";
  out += "  protected override synthesizeAttributes(): Record<string, unknown> {\n    return {\n";
  for (const [name, attr] of attributes)
    out += `      ${name}: ${typing(attr.type).mapper}(this.input.${camel(name)}),\n`;
  out += "      alias: cdktf.stringToTerraform(this.aliasName),\n    };\n  }\n}\n\n";
  return out;
}

/** The bindings' source text, formatted as the repo's formatter writes TypeScript. */
export function generateBindings(schema: ProviderSchema): string {
  let text =
    "// Generated by providers/tools/gen-cdktf.ts from `terraform providers schema -json` of the built provider.\n" +
    "// Do not edit: change the provider, then run `node --import tsx providers/tools/gen-cdktf.ts`.\n" +
    'import * as cdktf from "cdktf";\nimport type { Construct } from "constructs";\n\n';
  text += emitProvider(schema.provider.block);
  for (const [name, { block }] of Object.entries(schema.resource_schemas).sort())
    text += emitBlock(name, block, "resource");
  for (const [name, { block }] of Object.entries(schema.data_source_schemas).sort())
    text += emitBlock(name, block, "data");
  return execFileSync(join(ROOT, "node_modules/.bin/biome"), ["format", `--stdin-file-path=${OUTPUT}`], {
    input: text,
    encoding: "utf8",
  });
}

if (process.argv[1] === import.meta.filename) {
  execFileSync(process.execPath, [join(ROOT, "scripts/build-provider.mjs")], { stdio: "inherit" });
  await writeFile(OUTPUT, generateBindings(await readProviderSchema()));
  console.log(`wrote ${OUTPUT}`);
}
