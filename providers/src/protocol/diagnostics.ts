import { HoldfastError } from "../../../agent/src/errors.js";

/** A problem to show the user, on the attribute at fault when there is one. Errors never go out as gRPC errors. */
export interface Diagnostic {
  severity: "error" | "warning";
  summary: string;
  detail?: string;
  /** Attribute names from the top of the block, e.g. `["size"]` or `["timeouts", "create"]`. */
  path?: string[];
}

export const error = (summary: string, detail?: string, path?: string[]): Diagnostic => ({
  severity: "error",
  summary,
  detail,
  path,
});

/** A warning: shown with the plan, it stops nothing (so `terraform destroy` still works). */
export const warning = (summary: string, detail?: string, path?: string[]): Diagnostic => ({
  severity: "warning",
  summary,
  detail,
  path,
});

export const hasErrors = (diagnostics: Diagnostic[]): boolean =>
  diagnostics.some((d) => d.severity === "error");

/** A thrown error as a diagnostic; `pathOf` maps the field a HoldfastError names to an attribute path. */
export function diagnosticOf(
  err: unknown,
  summary: string,
  pathOf: (field: string | undefined) => string[] | undefined = () => undefined,
): Diagnostic {
  if (err instanceof HoldfastError) return error(summary, err.message, pathOf(err.field));
  return error(summary, err instanceof Error ? err.message : String(err));
}

/** The tfplugin6 Diagnostic message. */
export function diagnosticMessage(d: Diagnostic) {
  return {
    severity: d.severity === "error" ? 1 : 2,
    summary: d.summary,
    detail: d.detail ?? "",
    attribute: d.path ? { steps: d.path.map((name) => ({ attribute_name: name })) } : undefined,
  };
}
