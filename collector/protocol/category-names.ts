// The event categories of design.md §3, by name only: what the dashboard lists, without the field
// schemas (and zod) that categories.ts holds for each. categories.ts checks the two agree.
export const CATEGORY_NAMES = [
  'process_creation', 'process_termination', 'process_privilege_change', 'network_connection', 'remote_session',
  'shell_command', 'session_recording', 'removable_media', 'agent',
] as const;

export type Category = (typeof CATEGORY_NAMES)[number];
