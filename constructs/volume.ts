import { SpecError } from "../agent/src/errors.js";
import {
  formatSpec,
  type PartialVolumeSpec,
  parseSpec,
  specFromFields,
  VOLUME_KEYS,
  type VolumeKey,
  type VolumeSpec,
  withDefaults,
} from "../agent/src/volume-spec/index.js";
import { invalid } from "./agent-settings.js";
import {
  Construct,
  type HoldfastVolumeConfig,
  HoldfastVolumeResource,
  type ITerraformDependable,
} from "./cdktf.js";
import type { HoldfastCluster } from "./cluster.js";
import type { VolumeFields } from "./volume-fields.js";

export interface HoldfastVolumeProps {
  /** The whole volume as an inline spec, `name=pgdata,size=20G,repl=3`. Give this or `volume`. @default - none */
  readonly spec?: string;
  /** The volume's keys as props. Give this or `spec`. @default - none */
  readonly volume?: VolumeFields;
  /** The cluster the volume must fit: its replicas are checked against the cluster's failure domains. @default - not checked */
  readonly cluster?: HoldfastCluster;
  /** The failure domain the replicas must be spread over, checked against `cluster`. @default "zones" */
  readonly spread?: "zones" | "racks" | "nodes";
  /** Resources the volume waits for. @default - none */
  readonly dependsOn?: ITerraformDependable[];
}

/** The binding's property for a key: its Terraform attribute in camel case (`block_size` is `blockSize`). */
const propertyOf = (key: VolumeKey) =>
  (key.terraform ?? key.name).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * A Holdfast volume through the provider's `holdfast_volume` resource, declared from an inline spec or from props.
 * The spec is parsed by the agent's own parser at synthesis, so a bad key fails `cdktf synth` with the message the
 * agent would give; with `cluster`, more replicas than its failure domains fail too.
 */
export class HoldfastVolume extends Construct {
  /** The volume as given (only the keys given), parsed. */
  readonly spec: PartialVolumeSpec;
  readonly resource: HoldfastVolumeResource;

  constructor(
    scope: Construct,
    id: string,
    readonly props: HoldfastVolumeProps,
  ) {
    super(scope, id);
    if ((props.spec === undefined) === (props.volume === undefined)) {
      throw invalid(this, "spec", "give either spec or volume");
    }
    this.spec = this.parse();
    this.resource = new HoldfastVolumeResource(this, "volume", {
      // An inline spec goes to the provider as its canonical form, so rewording it changes nothing.
      ...(props.spec !== undefined ? { spec: formatSpec(this.spec) } : this.attributes()),
      dependsOn: props.dependsOn,
    });
    if (props.cluster) {
      const cluster = props.cluster;
      this.node.addValidation({ validate: () => this.fits(cluster) });
    }
  }

  /** The parsed spec with defaults: what the agent will create. */
  get fullSpec(): VolumeSpec {
    return withDefaults(this.spec);
  }

  private parse(): PartialVolumeSpec {
    try {
      if (this.props.spec !== undefined) return parseSpec(this.props.spec);
      const spec = specFromFields({ ...this.props.volume });
      if (!spec.name) throw new SpecError("name", "is required");
      withDefaults(spec as PartialVolumeSpec);
      return spec as PartialVolumeSpec;
    } catch (err) {
      if (err instanceof SpecError)
        throw invalid(this, this.props.spec !== undefined ? "spec" : "volume", err.message);
      throw err;
    }
  }

  /** Only the keys given, each under its provider attribute, in the provider's value forms. */
  private attributes(): HoldfastVolumeConfig {
    const config: Record<string, unknown> = {};
    for (const key of VOLUME_KEYS) {
      const value = this.spec[key.field];
      if (value === undefined) continue;
      const attribute = propertyOf(key);
      // Sizes and snapshot schedules go as their spec strings (`20G`); lists, maps, numbers and booleans as JSON.
      config[attribute] =
        key.kind.type === "size" || key.kind.type === "schedule"
          ? (key.kind.format as (v: unknown) => string)(value)
          : value;
    }
    return config as HoldfastVolumeConfig;
  }

  private fits(cluster: HoldfastCluster): string[] {
    const repl = this.fullSpec.repl;
    const spread = this.props.spread ?? "zones";
    const domains = cluster.failureDomains(spread);
    return repl > domains
      ? [
          `${this.spec.name}: repl=${repl} with spread: ${spread} needs ${repl} ${spread}; cluster ${cluster.clusterName} has ${domains}`,
        ]
      : [];
  }
}
