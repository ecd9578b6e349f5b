import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../config/index.ts';
import { createLogger, silentLogger, type Logger } from '../log/index.ts';
import { createPlatformSensors, createSensors } from './index.ts';

function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe('the platform is chosen at start', () => {
  it('on Windows, each sensor says once, in the log and in its health, that its live source is not there', async () => {
    const { logger, lines } = capturingLogger();
    const sensors = createPlatformSensors({ config: defaultConfig(), hostId: 'h', logger }, 'win32');
    expect(sensors.linux).toBeUndefined();
    for (const sensor of sensors.ordered) await sensor.start(() => {});
    const health = sensors.ordered.map((s) => s.health());
    expect(health.map((h) => [h.name, h.state])).toEqual([['processes', 'unavailable'], ['sessions', 'unavailable'], ['connections', 'unavailable'], ['media', 'unavailable']]);
    expect(health.find((h) => h.name === 'connections')?.reason).toMatch(/netstat -ano parser exists/);
    expect(lines.filter((l) => l['msg'] === 'sensor unavailable on this host')).toHaveLength(4);
  });

  it('on Linux, a source this host lacks is a note in the sensor\'s health and one log line', async () => {
    const { logger, lines } = capturingLogger();
    const config = parseConfig('sensors:\n  sessions:\n    utmpPath: /nonexistent/utmp\n', 'test.yml');
    const sensors = createSensors({ config, hostId: 'h', logger });
    for (const sensor of sensors.ordered) await sensor.start(() => {});
    sensors.sessions.utmp();
    for (const sensor of sensors.ordered.toReversed()) await sensor.stop();
    expect(sensors.sessions.health()).toMatchObject({ state: 'ok', notes: [expect.stringContaining('no /nonexistent/utmp')] });
    expect(lines.filter((l) => String(l['msg']).startsWith('no utmp file'))).toHaveLength(1);
  });

  it('builds every Linux sensor from the defaults', () => {
    const sensors = createSensors({ config: defaultConfig(), hostId: 'h', logger: silentLogger() });
    expect(sensors.ordered.map((s) => s.name)).toEqual(['sessions', 'processes', 'connections', 'media']);
  });
});
