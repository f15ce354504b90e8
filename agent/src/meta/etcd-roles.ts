import { Etcd3, EtcdRoleExistsError, EtcdUserExistsError, Range } from "etcd3";
import { OperationError } from "../errors.js";
import { type EtcdTls, etcdClientOptions } from "./etcd-store.js";

/**
 * The etcd user (and role) of a cluster's agents. With `--client-cert-auth` and auth on, etcd takes a client
 * certificate's CN as the user, so the certificate issued to the cluster's nodes carries this CN.
 */
export function clusterEtcdUser(cluster: string): string {
  return `holdfast-${cluster}`;
}

/** What {@link grantClusterAccess} set up. */
export interface ClusterAccess {
  /** The user a client certificate must name as its CN. */
  user: string;
  /** The role granted to it. */
  role: string;
  /** The one key prefix the role may read and write. */
  prefix: string;
}

const ignore = (kind: new (...args: never[]) => Error) => (err: unknown) => {
  if (!(err instanceof kind)) throw err;
};

/**
 * Gives a cluster's agents their own etcd role, readwrite on `/holdfast/<cluster>/` and nothing else, as etcd's
 * security guide has it: a role per tenant, users authenticated by certificate (no passwords to leak). Turns etcd
 * authentication on first when it is off (a `root` user, certificate only, must exist for that). Idempotent.
 * Needs root's credentials: a client certificate with CN `root` once auth is on.
 */
export async function grantClusterAccess(
  options: { endpoints: string[]; tls: EtcdTls; timeoutMs?: number },
  cluster: string,
): Promise<ClusterAccess> {
  const client = new Etcd3(etcdClientOptions(options));
  const access: ClusterAccess = {
    user: clusterEtcdUser(cluster),
    role: clusterEtcdUser(cluster),
    prefix: `/holdfast/${cluster}/`,
  };
  try {
    // Each step is idempotent in etcd 3.4 (which has no AuthStatus to ask first).
    await client.auth
      .userAdd({ name: "root", options: { no_password: true } })
      .catch(ignore(EtcdUserExistsError));
    await client.auth.userGrantRole({ user: "root", role: "root" });
    await client.auth.authEnable();
    await client.auth.roleAdd({ name: access.role }).catch(ignore(EtcdRoleExistsError));
    const range = Range.prefix(access.prefix);
    await client.auth.roleGrantPermission({
      name: access.role,
      perm: { permType: "Readwrite", key: range.start, range_end: range.end },
    });
    await client.auth
      .userAdd({ name: access.user, options: { no_password: true } })
      .catch(ignore(EtcdUserExistsError));
    await client.auth.userGrantRole({ user: access.user, role: access.role });
    return access;
  } catch (err) {
    throw new OperationError(
      "meta.grant_failed",
      `cannot grant cluster ${cluster} its etcd role (are these root's credentials?): ${(err as Error).message}`,
      err,
    );
  } finally {
    client.close();
  }
}
