import type { Response } from 'express';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { fromErrorPayload, RelayError } from '@mtls-relay/shared/errors';
import { groupHeaders } from '@mtls-relay/shared/http';
import { forwardResultSchema } from '@mtls-relay/shared/jobs';
import { responseOf } from '@mtls-relay/shared/sealed-parts';
import type { ReplyMessage, ResponseParts } from '@mtls-relay/shared/jobs';
import { sendProblem } from './problem.ts';

export const jobLocation = (jobId: string): string => `/mtls/jobs/${jobId}`;

/**
 * Replays the target's response as the worker recorded it: status, end-to-end headers, body bytes, plus LP-* headers.
 * `parts`: the response when the record's reader already opened it (from its response group).
 */
export function sendTargetResponse(res: Response, ring: KeyRing, jobId: string, result: unknown, parts?: ResponseParts): void {
  const parsed = forwardResultSchema.safeParse(result);
  if (!parsed.success) {
    sendProblem(res, new RelayError('internal', 'the job result is not readable'), { jobId });
    return;
  }
  const r = parsed.data;
  const { headers, body } = responseOf(ring, jobId, r, parts);
  for (const [name, values] of groupHeaders(headers)) {
    res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
  }
  res.setHeader('LP-mtls', r.mtls.used ? 'used' : 'none');
  if (r.mtls.certificateId !== undefined) res.setHeader('LP-mtls-certificate-id', r.mtls.certificateId);
  res.setHeader('LP-job-id', jobId);
  res.setHeader('Content-Length', String(body.length));
  res.statusCode = r.status;
  // 1xx/204/304 responses carry no body on the wire.
  res.end(r.status === 204 || r.status === 304 ? undefined : body);
}

/** Answers with a finished job's outcome: the target's response, or the relay's problem. */
export function sendOutcome(res: Response, ring: KeyRing, outcome: ReplyMessage): void {
  if (outcome.ok) sendTargetResponse(res, ring, outcome.id, outcome.result, outcome.parts);
  else sendProblem(res, fromErrorPayload(outcome.error), { jobId: outcome.id });
}
