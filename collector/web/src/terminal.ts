// Terminal output, shown only by a terminal emulator: a session's live output in xterm.js (read-only,
// links inert), its recording in asciinema-player. Neither ever turns the vendor's bytes into markup.
import { Terminal } from '@xterm/xterm';
import { create as createPlayer, type Player } from 'asciinema-player';
import { ApiError, request, socketUrl } from './api.ts';
import { castDuration, IDLE_LIMIT_S } from './cast.ts';

export type LiveState = 'connecting' | 'live' | 'offline' | 'ended' | 'reconnecting';

const THEME = { background: '#0b0f14', foreground: '#d7dde5', cursor: '#d7dde5', selectionBackground: '#33506e' };

/** Watches a live session: output into a read-only terminal, state changes to `onState`. */
export function liveTerminal(container: HTMLElement, sessionId: string, size: { cols: number; rows: number }, onState: (state: LiveState) => void): { close(): void; terminal: Terminal } {
  const terminal = new Terminal({
    cols: size.cols, rows: size.rows, disableStdin: true, cursorBlink: false, scrollback: 10_000, convertEol: false,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace', fontSize: 13, theme: THEME,
    // A link in the vendor's output (OSC 8) opens nothing: this view is evidence, not a browser.
    linkHandler: { activate: () => {}, allowNonHttpProtocols: false },
  });
  terminal.open(container);
  let ws: WebSocket | null = null;
  let ended = false;
  let closed = false;
  let retryMs = 500;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const connect = () => {
    onState(ws ? 'reconnecting' : 'connecting');
    const socket = new WebSocket(socketUrl(`/sessions/live?id=${encodeURIComponent(sessionId)}`));
    ws = socket;
    socket.addEventListener('open', () => {
      retryMs = 500;
      onState('live');
    });
    socket.addEventListener('message', (message) => {
      let frame: { type?: unknown; data?: unknown };
      try {
        frame = JSON.parse(String(message.data)) as typeof frame;
      } catch {
        return;
      }
      if (frame.type === 'pty' && typeof frame.data === 'string') terminal.write(frame.data);
      else if (frame.type === 'session.offline') onState('offline');
      else if (frame.type === 'session.end') {
        ended = true;
        onState('ended');
      }
    });
    socket.addEventListener('close', () => {
      if (ended || closed || ws !== socket) return;
      // The collector went away (restart, network): the session may still run; watch it again,
      // unless the login ended (the page then goes back to its login).
      onState('reconnecting');
      request('GET', '/session').then(() => {
        if (closed) return;
        retry = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 10_000);
      }, (error: unknown) => {
        if (closed || (error instanceof ApiError && error.status === 401)) return;
        retry = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 10_000);
      });
    });
  };
  connect();
  return {
    terminal,
    close() {
      closed = true;
      clearTimeout(retry);
      ws?.close();
      terminal.dispose();
    },
  };
}

/** A recording in asciinema-player, paused on its last screen until played. */
export function replayer(container: HTMLElement, cast: string, speed = 1): Player {
  const duration = castDuration(cast);
  return createPlayer({ data: cast }, container, {
    fit: 'width', idleTimeLimit: IDLE_LIMIT_S, speed, preload: true, controls: true, autoPlay: false,
    // The poster shows events before its time, not at it: a second past the end shows the last screen.
    poster: `npt:${(duration + 1).toFixed(3)}`, terminalFontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  });
}
