import type { KeyRing } from '@mtls-relay/shared/crypto';
import type { ForwardResult, ResponseParts } from '@mtls-relay/shared/jobs';
import { sealResponse, sealResponseGroup } from '@mtls-relay/shared/sealed-parts';

/** Responses with bodies up to this size are sealed in groups; a larger one is sealed on its own. */
export const GROUP_MEMBER_BYTES = 16 * 1024;
/** A group closes at this many body bytes, so that reading one forward's response reads little of the others'. */
export const GROUP_BYTES = 64 * 1024;

/** A finished forward's response in clear, and the result whose `response` it is sealed into. */
export interface UnsealedResponse {
  jobId: string;
  forwardId: string;
  result: ForwardResult;
  response: ResponseParts;
  /** Sealed on its own whatever its size (a lone record, whose reply carries its result). */
  alone: boolean;
}

/**
 * Seals the responses a recorder writes together into their results. With `group`, the responses of one job up to
 * GROUP_MEMBER_BYTES are sealed together, up to GROUP_BYTES a group (one cipher set-up for the group instead of one
 * per response): `store` gets each group's field (from `nextField`, unique to the writer) and sealed text, to be
 * written before the records, and each member's `result.response` becomes that field. The others — `alone`, larger
 * responses, a group that would hold one response, every response without `group` — are sealed on their own.
 */
export function sealResponses(
  ring: KeyRing,
  items: readonly UnsealedResponse[],
  options: { group: boolean; nextField: () => string; store: (jobId: string, field: string, text: string) => void },
): void {
  const sealAlone = (item: UnsealedResponse): void => {
    item.result.response = sealResponse(ring, item.forwardId, item.response);
  };
  const byJob = new Map<string, UnsealedResponse[]>();
  for (const item of items) {
    if (!options.group || item.alone || item.response.body.length > GROUP_MEMBER_BYTES) {
      sealAlone(item);
      continue;
    }
    const members = byJob.get(item.jobId);
    if (members === undefined) byJob.set(item.jobId, [item]);
    else members.push(item);
  }
  const close = (jobId: string, members: UnsealedResponse[]): void => {
    if (members.length === 1) {
      sealAlone(members[0] as UnsealedResponse);
      return;
    }
    const field = options.nextField();
    options.store(jobId, field, sealResponseGroup(ring, jobId, field, members.map((m) => ({ id: m.forwardId, parts: m.response }))));
    for (const m of members) m.result.response = field;
  };
  for (const [jobId, members] of byJob) {
    let group: UnsealedResponse[] = [];
    let bytes = 0;
    for (const m of members) {
      if (group.length > 0 && bytes + m.response.body.length > GROUP_BYTES) {
        close(jobId, group);
        group = [];
        bytes = 0;
      }
      group.push(m);
      bytes += m.response.body.length;
    }
    close(jobId, group);
  }
}
