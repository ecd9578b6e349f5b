// Starts the process sensor the way the agent does, in a process of its own (run unprivileged by
// test/exec-connector.test.ts), and prints which source is live and the sensor's health as JSON.
import { silentLogger } from '../../agent/log/index.ts';
import { createProcessSensor } from '../../agent/sensors/processes/index.ts';

const sensor = createProcessSensor({ hostId: 'probe', logger: silentLogger() });
await sensor.start(() => {});
process.stdout.write(`${JSON.stringify({ uid: process.getuid?.(), source: sensor.source, health: sensor.health() })}\n`);
await sensor.stop();
