// DOM helpers. Text always goes in as textContent, never as markup (the page enforces Trusted Types).

export const $ = (id) => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing`);
  return el;
};

/** h('td', { class: 'x', title: 't', dataset: { id } }, 'text', child…) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Shows `text` in the element (or hides it when text is empty). */
export function say(el, text) {
  el.textContent = text ?? '';
  el.hidden = text === undefined || text === null || text === '';
}

/** "api.example.com, *.example.net" → ["api.example.com", "*.example.net"] */
export function splitList(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s !== '');
}

export function formatDate(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Loads a chosen file's text into a textarea (PEM files). */
export function fileInto(input, textarea) {
  input.addEventListener('change', async () => {
    const file = input.files?.[0];
    if (file !== undefined) textarea.value = await file.text();
  });
}

/** Runs `fn` with the form's submit button disabled, so a double click sends once. */
export async function busy(form, fn) {
  const buttons = [...form.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  try {
    await fn();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

/** A yes/no question in the page's own dialog (no window.confirm). */
export function confirmDialog(text, yesLabel = 'Delete') {
  const dialog = $('confirm');
  say($('confirm-text'), text);
  $('confirm-yes').textContent = yesLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-yes').removeEventListener('click', yes);
      $('confirm-no').removeEventListener('click', no);
      dialog.removeEventListener('cancel', no);
      dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('confirm-yes').addEventListener('click', yes);
    $('confirm-no').addEventListener('click', no);
    dialog.addEventListener('cancel', no);
    dialog.showModal();
  });
}
