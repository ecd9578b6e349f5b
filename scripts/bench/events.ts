// The realistic event stream the rules benchmark judges: deterministic, mostly Linux process creations
// of an HMI's daily work, some inbound connections and remote-session events.
import type { EngineEvent } from '../../rules/engine/index.ts';

/** A deterministic stream of realistic events: mostly Linux process creations, as an HMI produces. */
export function makeEvents(count: number): EngineEvent[] {
  let state = 42;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const programs = [
    ['/usr/bin/bash', 'bash -c "systemctl status plc-gateway"'],
    ['/usr/bin/ls', 'ls -la /opt/scada/projects'],
    ['/usr/bin/python3.11', 'python3 /opt/hmi/poll_modbus.py --unit 3 --interval 500'],
    ['/usr/bin/grep', 'grep -r alarm /var/log/hmi/'],
    ['/usr/bin/cat', 'cat /etc/hmi/tags.conf'],
    ['/usr/sbin/iptables', 'iptables -L -n'],
    ['/usr/bin/ps', 'ps aux'],
    ['/usr/bin/curl', 'curl -s http://127.0.0.1:8080/health'],
    ['/usr/bin/tar', 'tar czf /backup/hmi-2026-11-28.tgz /opt/hmi'],
    ['/usr/bin/sudo', 'sudo -u scada /opt/hmi/restart.sh'],
    ['/usr/bin/vim', 'vim /opt/hmi/config/plant.yml'],
    ['/usr/bin/rm', 'rm -f /tmp/hmi-cache-1234.tmp'],
    ['/usr/bin/ssh', 'ssh engineer@10.20.0.5'],
    ['/usr/bin/base64', 'base64 /tmp/report.bin'],
  ] as const;
  const parents = ['/usr/bin/bash', '/usr/sbin/sshd', '/usr/lib/systemd/systemd', '/usr/bin/python3.11', '/usr/sbin/cron'];
  const users = ['root', 'scada', 'vendor1', 'engineer', 'operator'];
  const events: EngineEvent[] = [];
  for (let i = 0; i < count; i++) {
    const id = `0193a000-0000-7000-8000-${String(i).padStart(12, '0')}`;
    const time = new Date(Date.UTC(2026, 10, 28, 8) + i * 20).toISOString();
    const host = { id: 'bench-host', name: 'hmi-07' };
    const roll = random();
    if (roll < 0.85) {
      const [image, commandLine] = pick(programs);
      events.push({
        id, time, host, category: 'process_creation', product: 'linux', fields: {
          ProcessId: 1000 + i, Image: image, CommandLine: `${commandLine}${i % 7 === 0 ? ` --run ${i}` : ''}`,
          CurrentDirectory: '/home/vendor1', User: pick(users), ParentProcessId: 900, ParentImage: pick(parents),
          ParentCommandLine: '-bash', SessionId: i % 3 === 0 ? 'ssh-3f2a9c' : undefined, InMaintenanceWindow: i % 5 !== 0,
        },
      });
    } else if (roll < 0.95) {
      events.push({
        id, time, host, category: 'network_connection', product: 'linux', fields: {
          Image: '/usr/sbin/sshd', ProcessId: 700, User: 'root', Protocol: 'tcp', Initiated: false,
          SourceIp: `10.20.0.${Math.floor(random() * 250)}`, SourcePort: 40_000 + (i % 20_000), DestinationIp: '10.20.0.7', DestinationPort: 22, Tool: 'sshd',
        },
      });
    } else {
      events.push({
        id, time, host, category: 'remote_session', product: 'linux', fields: {
          SessionId: `ssh-${i}`, Action: i % 2 ? 'start' : 'end', Protocol: 'ssh', Tool: 'sshd', User: pick(users),
          SourceIp: `10.20.0.${Math.floor(random() * 250)}`, LocalPort: 22, InMaintenanceWindow: i % 4 !== 0, SourceApproved: true,
        },
      });
    }
  }
  return events;
}

