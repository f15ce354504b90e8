/**
 * Generates providers/docs/ in the Terraform Registry's layout (index.md, resources/<name>.md,
 * data-sources/<name>.md) from the provider's schema as Terraform reports it and the examples in
 * providers/examples/, as tfplugindocs does for Go providers: descriptions and examples cannot drift from the code.
 *
 *   node --import tsx providers/tools/gen-docs.ts      (builds the provider first)
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type CtyType,
  type ProviderSchema,
  ROOT,
  readProviderSchema,
  type SchemaBlock,
} from "./provider-schema.js";

export const DOCS = join(ROOT, "providers/docs");
const EXAMPLES = join(ROOT, "providers/examples");

/** The type as the Registry writes it: `String`, `List of String`, `Map of String`, `Dynamic`. */
function typeName(type: CtyType): string {
  if (typeof type === "string")
    return type === "bool" ? "Boolean" : type.replace(/^./, (c) => c.toUpperCase());
  const [kind, inner] = type;
  if (kind === "object") return "Object";
  const of = typeName(inner as CtyType);
  return `${kind.replace(/^./, (c) => c.toUpperCase())} of ${of}`;
}

function example(path: string, language: string): string {
  const file = join(EXAMPLES, path);
  return existsSync(file) ? `\`\`\`${language}\n${readFileSync(file, "utf8").trimEnd()}\n\`\`\`\n` : "";
}

/** The "Schema" section: attributes grouped Required / Optional / Read-Only, then each nested block's. */
function schemaSection(block: SchemaBlock): string {
  const groups: Record<string, string[]> = { Required: [], Optional: [], "Read-Only": [] };
  const nested: string[] = [];
  for (const [name, attr] of Object.entries(block.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    const group = attr.required ? "Required" : attr.optional ? "Optional" : "Read-Only";
    const sensitive = attr.sensitive ? ", Sensitive" : "";
    groups[group]?.push(
      `- \`${name}\` (${typeName(attr.type)}${sensitive}) ${attr.description ?? ""}`.trimEnd(),
    );
  }
  for (const [name, nestedBlock] of Object.entries(block.block_types ?? {})) {
    groups.Optional?.push(
      `- \`${name}\` (Block, Optional) (see [below for nested schema](#nestedblock--${name}))`,
    );
    const lines = Object.entries(nestedBlock.block.attributes ?? {}).map(([attr, spec]) =>
      `- \`${attr}\` (${typeName(spec.type)}) ${spec.description ?? ""}`.trimEnd(),
    );
    nested.push(
      `<a id="nestedblock--${name}"></a>\n### Nested Schema for \`${name}\`\n\n${nestedBlock.block.description ?? ""}\n\nOptional:\n\n${lines.join("\n")}\n`,
    );
  }
  const parts = Object.entries(groups)
    .filter(([, lines]) => lines.length > 0)
    .map(([title, lines]) => `### ${title}\n\n${lines.join("\n")}\n`);
  return `## Schema\n\n${[...parts, ...nested].join("\n")}`;
}

function page(title: string, kind: string, block: SchemaBlock, body: string): string {
  const description = block.description ?? "";
  return `---\npage_title: "${title} ${kind} - holdfast"\nsubcategory: ""\ndescription: |-\n  ${description}\n---\n\n# ${title} (${kind})\n\n${description}\n\n${body}`;
}

/** Every docs page, by path under providers/docs/. */
export function generateDocs(schema: ProviderSchema): Record<string, string> {
  const pages: Record<string, string> = {};
  pages["index.md"] = page(
    "holdfast",
    "Provider",
    schema.provider.block,
    "The provider talks to one Holdfast agent's REST API; any agent of the cluster will do. It runs offline: " +
      "install it through `dev_overrides` or a filesystem mirror (`node scripts/build-provider-mirror.mjs`), as " +
      "providers/README.md shows.\n\n" +
      `## Example Usage\n\n${example("provider/provider.tf", "terraform")}\n${schemaSection(schema.provider.block)}`,
  );
  for (const [type, { block }] of Object.entries(schema.resource_schemas)) {
    const short = type.replace(/^holdfast_/, "");
    const usage = example(`resources/${type}/resource.tf`, "terraform");
    const importing = example(`resources/${type}/import.sh`, "shell");
    pages[`resources/${short}.md`] = page(
      type,
      "Resource",
      block,
      `## Example Usage\n\n${usage}\n${schemaSection(block)}${importing ? `\n## Import\n\nImport is supported using the following syntax:\n\n${importing}` : ""}`,
    );
  }
  for (const [type, { block }] of Object.entries(schema.data_source_schemas)) {
    const short = type.replace(/^holdfast_/, "");
    const usage = example(`data-sources/${type}/data-source.tf`, "terraform");
    pages[`data-sources/${short}.md`] = page(
      type,
      "Data Source",
      block,
      `## Example Usage\n\n${usage}\n${schemaSection(block)}`,
    );
  }
  return pages;
}

if (process.argv[1] === import.meta.filename) {
  execFileSync(process.execPath, [join(ROOT, "scripts/build-provider.mjs")], { stdio: "inherit" });
  for (const [path, text] of Object.entries(generateDocs(await readProviderSchema()))) {
    await mkdir(dirname(join(DOCS, path)), { recursive: true });
    await writeFile(join(DOCS, path), text);
  }
  console.log(`wrote ${DOCS}`);
}
