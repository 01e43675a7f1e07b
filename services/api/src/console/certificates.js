// The certificates page: list with expiry colours, upload (PEM pair, or PKCS#12 where the API accepts it), edit/rotate, delete.
import { api, describe } from './api.js';
import { $, busy, confirmDialog, fileInto, formatDate, h, say, splitList } from './dom.js';

const DAY_MS = 86_400_000;

/**
 * The colour of an expiry, by the same rule as the relay's expiry check: the smallest of 30, 14 and 7 days that
 * the time left falls within; expired at or past the date.
 */
export function expiryOf(expiresOn, now = Date.now()) {
  const daysLeft = (Date.parse(expiresOn) - now) / DAY_MS;
  if (Number.isNaN(daysLeft)) return { level: 'unknown', text: 'unknown' };
  const whole = Math.floor(daysLeft);
  const text = daysLeft <= 0 ? 'expired' : whole === 0 ? 'less than a day left' : whole === 1 ? '1 day left' : `${whole} days left`;
  const level = daysLeft <= 0 ? 'expired' : daysLeft <= 7 ? '7' : daysLeft <= 14 ? '14' : daysLeft <= 30 ? '30' : 'ok';
  return { level, text, days: whole };
}

const base = (account) => `accounts/${encodeURIComponent(account)}/access/certificates`;

/** Every certificate of the account (all pages). */
export async function listCertificates(account) {
  const all = [];
  for (let page = 1; ; page++) {
    const body = await api('GET', `${base(account)}?page=${page}&per_page=1000`);
    all.push(...body.result);
    if (body.result_info === undefined || page >= body.result_info.total_pages) return all;
  }
}

// The upload accepts a PKCS#12 file only once the API documents it (its create schema has `pkcs12`).
let pkcs12Supported;
async function acceptsPkcs12() {
  if (pkcs12Supported !== undefined) return pkcs12Supported;
  try {
    const doc = await api('GET', 'openapi.json');
    const op = doc.paths?.['/accounts/{account_id}/access/certificates']?.post;
    let schema = op?.requestBody?.content?.['application/json']?.schema ?? {};
    if (typeof schema.$ref === 'string') schema = doc.components?.schemas?.[schema.$ref.split('/').pop()] ?? {};
    pkcs12Supported = schema.properties?.pkcs12 !== undefined;
  } catch {
    pkcs12Supported = false;
  }
  return pkcs12Supported;
}

function base64Of(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function certificatesPage(state) {
  const tbody = $('cert-table').querySelector('tbody');
  const error = $('cert-error');

  const row = (c) => {
    const e = expiryOf(c.expires_on);
    const fp = String(c.fingerprint ?? '');
    return h('tr', { dataset: { id: c.id } },
      h('td', { class: 'name' }, c.name),
      h('td', { class: 'kind' }, typeof c.type === 'string' ? c.type : 'client'),
      h('td', { class: 'hostnames' }, c.associated_hostnames.length === 0 ? h('span', { class: 'muted' }, '—') : c.associated_hostnames.join(', ')),
      h('td', { class: 'fingerprint' }, h('code', { title: fp }, fp.length > 23 ? `${fp.slice(0, 23)}…` : fp)),
      h('td', { class: 'expires' }, formatDate(c.expires_on), ' ',
        h('span', { class: `expiry expiry-${e.level}`, dataset: { level: e.level } }, e.text)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => openRotate(c) }, 'Edit / rotate'),
        h('button', { type: 'button', class: 'danger', onclick: () => remove(c) }, 'Delete')),
    );
  };

  const load = async () => {
    say(error, '');
    $('cert-account').textContent = `of ${state.account}`;
    try {
      const list = await listCertificates(state.account);
      list.sort((a, b) => Date.parse(a.expires_on) - Date.parse(b.expires_on));
      state.certificates = list;
      tbody.replaceChildren(...list.map(row));
      $('cert-empty').hidden = list.length > 0;
    } catch (err) {
      tbody.replaceChildren();
      state.certificates = [];
      say(error, describe(err));
    }
    $('upload-p12').hidden = !(await acceptsPkcs12());
  };

  const remove = async (c) => {
    if (!(await confirmDialog(`Delete the certificate "${c.name}"? Forwards will no longer present it.`))) return;
    try {
      await api('DELETE', `${base(state.account)}/${encodeURIComponent(c.id)}`);
      await load();
    } catch (err) {
      say(error, `Could not delete "${c.name}": ${describe(err)}`);
    }
  };

  // Upload.
  const form = $('upload-form');
  fileInto($('upload-cert-file'), $('upload-cert'));
  fileInto($('upload-key-file'), $('upload-key'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(form, async () => {
      say($('upload-error'), '');
      say($('upload-ok'), '');
      const name = $('upload-name').value.trim();
      const body = { name, associated_hostnames: splitList($('upload-hostnames').value) };
      const p12 = $('upload-p12').hidden ? undefined : $('upload-p12-file').files?.[0];
      if (p12 !== undefined) {
        body.pkcs12 = base64Of(await p12.arrayBuffer());
        body.passphrase = $('upload-p12-pass').value;
      } else {
        body.certificate = $('upload-cert').value;
        body.private_key = $('upload-key').value;
      }
      try {
        await api('POST', base(state.account), body);
        form.reset();
        $('upload-cert').value = '';
        $('upload-key').value = '';
        say($('upload-ok'), `Uploaded "${name}".`);
        await load();
      } catch (err) {
        say($('upload-error'), `The certificate was not uploaded: ${describe(err)}`);
      }
    });
  });

  // Edit / rotate.
  const dialog = $('rotate');
  const rotateForm = $('rotate-form');
  let editing;
  fileInto($('rotate-cert-file'), $('rotate-cert'));
  fileInto($('rotate-key-file'), $('rotate-key'));
  const openRotate = (c) => {
    editing = c;
    rotateForm.reset();
    $('rotate-title').textContent = `"${c.name}"`;
    $('rotate-name').value = c.name;
    $('rotate-hostnames').value = c.associated_hostnames.join(', ');
    $('rotate-cert').value = '';
    $('rotate-key').value = '';
    say($('rotate-error'), '');
    dialog.showModal();
  };
  $('rotate-cancel').addEventListener('click', () => dialog.close());
  rotateForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(rotateForm, async () => {
      const body = { name: $('rotate-name').value.trim(), associated_hostnames: splitList($('rotate-hostnames').value) };
      const cert = $('rotate-cert').value;
      const key = $('rotate-key').value;
      if (cert.trim() !== '' || key.trim() !== '') {
        body.certificate = cert;
        body.private_key = key;
      }
      try {
        await api('PUT', `${base(state.account)}/${encodeURIComponent(editing.id)}`, body);
        dialog.close();
        await load();
      } catch (err) {
        say($('rotate-error'), `Not saved: ${describe(err)}`);
      }
    });
  });

  return { load };
}
