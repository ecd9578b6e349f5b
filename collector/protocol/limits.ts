// Size limits shared by the agent (which truncates to them) and the collector (which rejects past them).
// A value past its limit is cut by the agent and flagged, never silently dropped.

export const MAX_FIELD_STRING_CHARS = 32_768;
export const MAX_NAME_CHARS = 1_024;
