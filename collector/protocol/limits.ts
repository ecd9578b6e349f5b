// Size limits shared by the agent (which truncates to them) and the collector (which rejects past them).
// A value past its limit is cut by the agent and flagged, never silently dropped.

export const MAX_FIELD_STRING_CHARS = 32_768;
export const MAX_NAME_CHARS = 1_024;
/** A recording chunk's asciicast lines; the agent cuts chunks well below it (recording.ts). */
export const MAX_RECORDING_CHUNK_CHARS = 512 * 1024;
