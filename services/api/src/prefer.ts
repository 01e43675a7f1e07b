/** RFC 7240 Prefer: `respond-async` and `wait=N` (seconds). */
export interface Preferences {
  respondAsync: boolean;
  waitSeconds: number | undefined;
}

export function parsePrefer(values: string | string[] | undefined): Preferences {
  const prefs: Preferences = { respondAsync: false, waitSeconds: undefined };
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  for (const value of list) {
    for (const part of value.split(',')) {
      // Preference parameters (after ';') carry nothing the relay uses.
      const [token = ''] = part.split(';');
      const [name = '', raw] = token.split('=').map((s) => s.trim());
      const key = name.toLowerCase();
      if (key === 'respond-async') prefs.respondAsync = true;
      else if (key === 'wait' && raw !== undefined && /^\d+$/.test(raw.replace(/^"|"$/g, ''))) {
        prefs.waitSeconds = Number(raw.replace(/^"|"$/g, ''));
      }
    }
  }
  return prefs;
}
