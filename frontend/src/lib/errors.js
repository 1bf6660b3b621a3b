// API errors rewritten for people: validation messages like "Expected `str` of length >= 8 - at `$.password`"
// become "Password needs at least 8 characters"; rate limits say when one can try again.

const FIELD_NAMES = {
  username: 'Username',
  email: 'Email',
  password: 'Password',
  login: 'Username or email',
  title: 'Title',
  body: 'Text',
  name: 'Name',
  slug: 'Short name',
  category: 'Category',
  reason: 'Reason',
  notes: 'Notes',
  days: 'Days',
  q: 'Search',
};

function fieldLabel(key) {
  if (!key) return '';
  const last = String(key).replace(/^\$\.?/, '').split('.').pop();
  return FIELD_NAMES[last] ?? last.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

/** One validation message (msgspec/Litestar wording) as a sentence about `field`. */
export function humanizeMessage(message, key) {
  let m = String(message ?? '');
  const at = m.match(/ - at `([^`]+)`$/);
  if (at) {
    key = key || at[1];
    m = m.slice(0, at.index);
  }
  const label = fieldLabel(key) || 'This field';
  let x;
  if ((x = m.match(/^Expected `(?:str|array|object)` of length >= (\d+)$/)))
    return Number(x[1]) === 1 ? `${label} can't be empty` : `${label} needs at least ${x[1]} characters`;
  if ((x = m.match(/^Expected `(?:str)` of length <= (\d+)$/))) return `${label} can be at most ${x[1]} characters`;
  if ((x = m.match(/^Expected `array` of length <= (\d+)$/))) return `${label} can have at most ${x[1]} items`;
  if ((x = m.match(/^Expected `str` matching regex `(.*)`$/))) {
    const last = String(key ?? '').split('.').pop();
    if (last === 'email') return "That doesn't look like an email address";
    if (last === 'username') return "Usernames may use letters, digits, '.', '-' and '_' (not first or last: '.' and '-')";
    if (/^\^\[a-z0-9/.test(x[1])) return `${label} may only use lowercase letters, digits and '-'`;
    return `${label} is not in the expected format`;
  }
  if ((x = m.match(/^Expected `(int|float|number)` >= ([\d.]+)$/))) return `${label} must be at least ${x[2]}`;
  if ((x = m.match(/^Expected `(int|float|number)` <= ([\d.]+)$/))) return `${label} must be at most ${x[2]}`;
  if ((x = m.match(/^Expected `(\w+)`, got `(\w+)`$/))) return `${label} should be a ${x[1] === 'str' ? 'text' : x[1]}`;
  if ((x = m.match(/^Invalid enum value (.*)$/))) return `${label}: ${x[1]} is not one of the choices`;
  if (/^Object missing required field `(\w+)`$/.test(m)) return `${fieldLabel(m.match(/`(\w+)`/)[1])} is required`;
  if (/^Object contains unknown field/.test(m)) return `${label} is not expected here`;
  return key ? `${label}: ${m}` : m;
}

function when(seconds) {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const min = Math.ceil(seconds / 60);
  if (min < 60) return `${min} minute${min === 1 ? '' : 's'}`;
  return new Date(Date.now() + seconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** `{message, lines}` for an Error/ApiError/string; lines are per-field problems. */
export function describeError(error) {
  if (error == null) return { message: '', lines: [] };
  if (typeof error === 'string') return { message: error, lines: [] };
  const extra = Array.isArray(error?.body?.extra) ? error.body.extra : [];
  const lines = extra
    .map((x) => (x && typeof x === 'object' ? humanizeMessage(x.message, x.key) : String(x)))
    .filter(Boolean);
  let message = error.message || 'Something went wrong.';
  if (error.status === 0) message = 'Could not reach the server. Check your connection and try again.';
  else if (error.status === 429 && error.retryAfter) {
    const wait = when(error.retryAfter);
    message = `${message.replace(/: wait \d+s$/, '')}. You can post again in ${wait}.`.replace(/^./, (c) => c.toUpperCase());
  } else if (/^Validation failed/.test(message) && lines.length) {
    message = lines.length === 1 ? lines[0] : 'Please fix the following:';
    if (lines.length === 1) lines.length = 0;
  } else if (error.status === 401) message = 'Please sign in first.';
  else if (error.status >= 500) message = 'Something went wrong on our side. Please try again in a moment.';
  else message = message.replace(/^./, (c) => c.toUpperCase());
  return { message, lines };
}
