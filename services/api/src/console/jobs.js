// The jobs page: one forward job by its id (GET /mtls/jobs/{id}).
// There is no list of an account's recent jobs: the API has none (yet).
import { api, describe } from './api.js';
import { $, busy, formatDate, h, say } from './dom.js';

export function jobsPage() {
  const form = $('job-form');
  const result = $('job-result');

  const show = (job) => {
    const entries = [
      ['State', h('span', { class: `state state-${job.state}` }, job.state)],
      ['Attempts', String(job.attempts)],
      ['Created', formatDate(job.createdAt)],
      ['Finished', job.finishedAt === null ? '—' : formatDate(job.finishedAt)],
      ['Target status', job.response === null ? '—' : String(job.response.status)],
      ['mTLS', job.mtls === null ? '—' : job.mtls.used ? `used (certificate ${job.mtls.certificateId ?? '?'})` : 'not used'],
      ['Error code', job.error === null ? '—' : h('code', {}, job.error.code)],
    ];
    if (job.error !== null) entries.push(['Error', job.error.detail]);
    result.replaceChildren(...entries.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { field: k.toLowerCase().replace(/\W+/g, '-') } }, v)]));
    result.hidden = false;
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(form, async () => {
      say($('job-error'), '');
      result.hidden = true;
      const id = $('job-id').value.trim();
      try {
        show(await api('GET', `mtls/jobs/${encodeURIComponent(id)}`));
      } catch (err) {
        say($('job-error'), err.status === 404 ? `No job ${id}: unknown, expired, or of an account these credentials may not see.` : describe(err));
      }
    });
  });

  return { load: async () => {} };
}
