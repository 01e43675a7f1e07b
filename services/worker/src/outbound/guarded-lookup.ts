import type { LookupFunction } from 'node:net';
import { familyOf as ipFamily, parseHost, TargetNotAllowedError } from '@mtls-relay/shared/net-policy';
import type { TargetPolicy } from '@mtls-relay/shared/net-policy';
import type { HostResolver, ResolvedAddress } from '@mtls-relay/shared/target-dns';

/**
 * The dial-time half of the SSRF guard. Node's net.connect skips `lookup` for IP literals, so literals are
 * checked before connecting; names are resolved inside undici's connect `lookup`, and the addresses it
 * returns are the ones dialled, so a name that resolved publicly when the API checked it and privately
 * now (DNS rebinding) is refused here. A mixed answer (public and private) is refused whole.
 */
export interface ConnectGuard {
  /** Throws TargetNotAllowedError when `host` is an IP literal that may not be dialled on `port`. */
  checkLiteral(host: string, port: number): void;
  /** undici/net `lookup` for connections to `port`; handles both the `all: true` and the single-address form. */
  lookup(port: number): LookupFunction;
}

function familyOf(option: unknown): 4 | 6 | undefined {
  if (option === 4 || option === 'IPv4') return 4;
  if (option === 6 || option === 'IPv6') return 6;
  return undefined;
}

export function createConnectGuard(policy: TargetPolicy, resolve: HostResolver): ConnectGuard {
  return {
    checkLiteral(host, port) {
      const parsed = parseHost(host);
      if (parsed.kind === 'invalid') throw new TargetNotAllowedError(`${host} is not a valid host`, 'reserved');
      if (parsed.kind === 'ip') policy.assertAddresses(host, [host], port);
    },
    lookup(port) {
      const guarded = (hostname: string, options: { family?: unknown; all?: boolean }, callback: (...args: unknown[]) => void): void => {
        const wanted = familyOf(options.family);
        const literal = parseHost(hostname);
        const answers: Promise<ResolvedAddress[]> =
          literal.kind === 'ip' ? Promise.resolve([{ address: hostname, family: ipFamily(literal.ip) }]) : resolve(hostname);
        answers.then(
          (all) => {
            try {
              policy.assertAddresses(hostname, all.map((a) => a.address), port);
            } catch (err) {
              callback(err);
              return;
            }
            const usable = wanted === undefined ? all : all.filter((a) => a.family === wanted);
            const first = usable[0];
            if (first === undefined) {
              callback(Object.assign(new Error(`${hostname} has no IPv${wanted ?? ''} address`), { code: 'ENOTFOUND', hostname }));
            } else if (options.all === true) callback(null, usable);
            else callback(null, first.address, first.family);
          },
          (err: unknown) => callback(err),
        );
      };
      return guarded as unknown as LookupFunction;
    },
  };
}
