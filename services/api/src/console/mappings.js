// The mappings page: list, create (pick a certificate), delete, and the mapping check for one tuple.
import { api, describe } from './api.js';
import { $, busy, confirmDialog, formatDate, h, say } from './dom.js';
import { listCertificates } from './certificates.js';

const base = (account) => `mtls/account/${encodeURIComponent(account)}/mappings`;

export function mappingsPage(state) {
  const tbody = $('mapping-table').querySelector('tbody');
  const error = $('mapping-error');
  const select = $('mapping-cert');

  const certName = (id) => state.certificates.find((c) => c.id === id)?.name;

  const row = (m) => h('tr', { dataset: { id: m.id } },
    h('td', { class: 'service' }, m.serviceName === '' ? h('span', { class: 'muted' }, '(none)') : m.serviceName),
    h('td', { class: 'url' }, h('code', {}, m.url)),
    h('td', { class: 'certificate' }, certName(m.certificateId) ?? h('code', {}, m.certificateId)),
    h('td', {}, formatDate(m.createdAt)),
    h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', onclick: () => remove(m) }, 'Delete')),
  );

  const load = async () => {
    say(error, '');
    try {
      // The certificate names, for the table and the picker.
      state.certificates = await listCertificates(state.account);
      select.replaceChildren(...state.certificates.map((c) => h('option', { value: c.id }, c.name)));
      const list = await api('GET', base(state.account));
      list.sort((a, b) => a.serviceName.localeCompare(b.serviceName) || a.url.localeCompare(b.url));
      tbody.replaceChildren(...list.map(row));
      $('mapping-empty').hidden = list.length > 0;
    } catch (err) {
      tbody.replaceChildren();
      say(error, describe(err));
    }
  };

  const remove = async (m) => {
    if (!(await confirmDialog(`Delete the mapping of ${m.serviceName === '' ? '(no service)' : `"${m.serviceName}"`} to ${m.url}?`))) return;
    try {
      await api('DELETE', `${base(state.account)}/${encodeURIComponent(m.id)}`);
      await load();
    } catch (err) {
      say(error, `Could not delete the mapping: ${describe(err)}`);
    }
  };

  const form = $('mapping-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(form, async () => {
      say($('mapping-form-error'), '');
      say($('mapping-ok'), '');
      try {
        const created = await api('POST', base(state.account), { serviceName: $('mapping-service').value.trim(), url: $('mapping-url').value.trim(), certificateId: select.value });
        say($('mapping-ok'), `Mapped to "${certName(created.certificateId) ?? created.certificateId}".`);
        $('mapping-url').value = '';
        await load();
      } catch (err) {
        say($('mapping-form-error'), `The mapping was not created: ${describe(err)}`);
      }
    });
  });

  const check = $('check-form');
  check.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(check, async () => {
      say($('check-error'), '');
      say($('check-result'), '');
      const tuple = { accountId: state.account, serviceName: $('check-service').value.trim(), url: $('check-url').value.trim() };
      try {
        const [answer] = await api('POST', 'mtls/mapping?v=2', [tuple]);
        const who = `${tuple.serviceName === '' ? 'no service name' : `service "${tuple.serviceName}"`} → ${tuple.url}`;
        const result = $('check-result');
        result.className = answer.doExist ? 'ok' : 'warn';
        result.dataset.exists = String(answer.doExist);
        say(result, answer.doExist
          ? `Yes: a forward (${who}) would be sent with a valid certificate.`
          : `No: a forward (${who}) would be sent without a certificate (or refused, with LP-stop-if-certificate-not-found: true).`);
      } catch (err) {
        say($('check-error'), `The check did not answer: ${describe(err)}`);
      }
    });
  });

  return { load };
}
