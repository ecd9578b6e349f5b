# omwatch recorded shell: the usual start-up files, then the command hook (agent/shell/marks.ts).
if [ -f /etc/profile ]; then . /etc/profile; fi
for __omwatch_f in "$HOME/.bash_profile" "$HOME/.bash_login" "$HOME/.profile"; do
  if [ -f "$__omwatch_f" ]; then . "$__omwatch_f"; break; fi
done
unset __omwatch_f
case "$-" in *i*) ;; *) return 0 2>/dev/null ;; esac
[ -f "$HOME/.bashrc" ] && ! grep -qs '\.bashrc' "$HOME/.profile" && . "$HOME/.bashrc"
HISTCONTROL=
HISTIGNORE=
set -o history
# Percent-encodes what would end or split the report: %, ;, BEL, ESC, CR, LF.
__omwatch_enc() {
  local s=$1
  s=${s//'%'/%25}; s=${s//';'/%3B}; s=${s//$'\a'/%07}; s=${s//$'\e'/%1B}; s=${s//$'\n'/%0A}; s=${s//$'\r'/%0D}
  __omwatch_out=$s
}
# Once per line read (armed at each prompt), before its first command runs; builtins only, no fork.
__omwatch_preexec() {
  [[ -n "${__omwatch_armed-}" && -z "${COMP_LINE-}" && -z "${READLINE_POINT-}" ]] || return 0
  __omwatch_armed=
  __omwatch_enc "$PWD"
  builtin printf '\033]6973;%s;%s;' "$OMWATCH_MARK" "$__omwatch_out"
  HISTTIMEFORMAT= builtin history 1
  builtin printf '\007'
}
# Subshells and functions inherit the trap, so `( cmd )` is reported too.
set -o functrace
trap '__omwatch_preexec' DEBUG
PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND$'\n'}__omwatch_armed=1"
