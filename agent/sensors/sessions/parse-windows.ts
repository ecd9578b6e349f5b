// Pure parsers for the logon-session tables that Windows `query user` (quser) and `qwinsta` print.
// Total: any text gives a result; lines that cannot be read are counted in `skipped`, never thrown.
import type { WindowsLogonSession } from '../types.ts';

/**
 * What a Windows text parser returns: the records it could read, and how many non-blank lines it
 * could not (the title/header line before the first record is not counted).
 */
export interface ParsedWindowsSessions {
  entries: WindowsLogonSession[];
  skipped: number;
}

/*
 * Both tools print fixed-width columns whose widths do not change with the display language; only
 * the header words (and state words such as Active/Aktiv/Activo) are translated, and some
 * translated headers contain spaces (es: "NOMBRE USUARIO"). So the header is never read: the first
 * two columns are cut at the positions seen in every capture we have (en, de, es; Server 2003 to
 * Windows 11), and everything from the session id on is read as whitespace-separated tokens.
 *
 *   quser:   ` USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME`
 *   qwinsta: ` SESSIONNAME       USERNAME                 ID  STATE   TYPE        DEVICE`
 *
 * Column 0 holds the `>` that marks the session running the command. The second column starts at
 * column 23 (quser) or 19 (qwinsta); the id is right-aligned, its last digit in column 43 or 45
 * (65536, the listener's id, grows to the left).
 *
 * A disconnected session has an empty SESSIONNAME, so a plain split on whitespace shifts every
 * later column by one; cutting at the fixed column is what keeps the user name in its place.
 */
interface Layout {
  /** Where the second column (quser SESSIONNAME, qwinsta USERNAME) starts. */
  secondColumn: number;
  /** Which field the first column holds; the second holds the other. */
  first: 'user' | 'sessionName';
}

const QUSER: Layout = { secondColumn: 23, first: 'user' };
const QWINSTA: Layout = { secondColumn: 19, first: 'sessionName' };

interface Token {
  text: string;
  start: number;
  end: number;
}

/** Parses `query user` / `quser` output. */
export function parseQueryUser(text: string): ParsedWindowsSessions {
  return parseTable(text, QUSER, (rest, line) => {
    const idle = rest[0];
    const logon = rest[1];
    return {
      ...(idle !== undefined ? { idle: idle.text } : {}),
      // The logon time holds spaces ("4/1/2022 4:09 AM"), so it is the rest of the line as printed.
      ...(logon !== undefined ? { logonTime: line.slice(logon.start).trim() } : {}),
    };
  });
}

/** Parses `qwinsta` / `query session` output, listener lines (id 65536, state Listen) included. */
export function parseQwinsta(text: string): ParsedWindowsSessions {
  // TYPE and DEVICE are empty on every current Windows; older builds print `rdpwd`/`wdcon` there.
  return parseTable(text, QWINSTA, () => ({}));
}

/**
 * The sessions that come in over RDP: those named `rdp-tcp#N`. The bare `rdp-tcp` line is the
 * listener, not a session. Windows drops the name of a disconnected session, so a disconnected RDP
 * session cannot be told from a disconnected console session here and is not returned.
 */
export function rdpSessionsFrom(sessions: readonly WindowsLogonSession[]): WindowsLogonSession[] {
  return sessions.filter((s) => s.sessionName !== undefined && /^rdp-tcp#\d+$/i.test(s.sessionName));
}

/** Reads the columns after STATE: `idle` and `logonTime` for quser, nothing for qwinsta. */
type TailReader = (rest: Token[], line: string) => Pick<WindowsLogonSession, 'idle' | 'logonTime'>;

function parseTable(text: string, layout: Layout, readTail: TailReader): ParsedWindowsSessions {
  const entries: WindowsLogonSession[] = [];
  let skipped = 0;
  if (typeof text !== 'string') return { entries, skipped };
  let seenFirstLine = false;
  for (const raw of splitLines(text)) {
    if (raw.trim() === '') continue;
    const session = parseLine(raw, layout, readTail);
    if (session !== undefined) {
      entries.push(session);
    } else if (seenFirstLine) {
      skipped += 1;
    }
    // The first non-blank line is the (possibly translated) header; it is not a skip.
    seenFirstLine = true;
  }
  return { entries, skipped };
}

function parseLine(raw: string, layout: Layout, readTail: TailReader): WindowsLogonSession | undefined {
  // Column 0 holds the current-session marker; a line whose margin was trimmed away gets it back.
  const line = raw[0] === '>' || raw[0] === ' ' ? raw : ` ${raw}`;
  const tokens = tokenize(line);
  const idIndex = findIdIndex(tokens, layout);
  if (idIndex < 0) return undefined;
  const idToken = tokens[idIndex];
  const stateToken = tokens[idIndex + 1];
  if (idToken === undefined || stateToken === undefined) return undefined;
  const id = Number(idToken.text);
  if (!Number.isSafeInteger(id)) return undefined;

  const [first, second] = splitNames(line.slice(0, idToken.start), layout);
  const user = layout.first === 'user' ? first : second;
  const sessionName = layout.first === 'user' ? second : first;
  return {
    ...(user !== '' ? { user } : {}),
    ...(sessionName !== '' ? { sessionName } : {}),
    id,
    state: stateToken.text,
    ...readTail(tokens.slice(idIndex + 2), line),
  };
}

/**
 * The session id: the first all-digit token that ends past the start of the second column and is
 * followed by a state. Ending past the second column keeps a digit inside a user name (`user 2`)
 * from being taken for the id; the fallback serves layouts shifted by hand-edited captures.
 */
function findIdIndex(tokens: Token[], layout: Layout): number {
  // The id leads the line only when both name columns are empty (old servers' idle WinStations).
  const isId = (t: Token, i: number): boolean =>
    /^\d+$/.test(t.text) && tokens[i + 1] !== undefined && (i > 0 || t.start >= layout.secondColumn);
  const byColumn = tokens.findIndex((t, i) => t.end > layout.secondColumn && isId(t, i));
  if (byColumn >= 0) return byColumn;
  return tokens.findIndex((t, i) => isId(t, i));
}

/** Splits the text before the id into the first two columns. */
function splitNames(prefix: string, layout: Layout): [string, string] {
  const body = prefix.slice(1); // drop the marker column
  const cut = layout.secondColumn - 1;
  const straddles = /\S/.test(body[cut - 1] ?? '') && /\S/.test(body[cut] ?? '');
  if (!straddles) return [body.slice(0, cut).trim(), body.slice(cut).trim()];
  // A name runs over the column boundary: the layout is not the usual one, fall back to words.
  const words = tokenize(body).map((t) => t.text);
  if (words.length === 1) return [words[0] ?? '', ''];
  return [words[0] ?? '', words.slice(1).join(' ')];
}

function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  for (const match of line.matchAll(/[^\s>]\S*/g)) {
    tokens.push({ text: match[0], start: match.index, end: match.index + match[0].length });
  }
  return tokens;
}

function splitLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
}
