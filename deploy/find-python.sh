#!/usr/bin/env sh
# Print the path of a Python >= 3.12 on this machine, or fail with a hint.
# Order (3.12 first, as in production): $PUNA_PYTHON, python3.12/3.13 on PATH, pyenv's installs, uv-managed ones.
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }
for c in "${PUNA_PYTHON:-}" python3.12 python3.13 python3; do
  [ -n "$c" ] || continue
  p=$(command -v "$c" 2>/dev/null) || continue
  # pyenv shims answer for versions that are not selected; only trust a real interpreter.
  case "$p" in */shims/*) p=$("$c" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue;; esac
  if ok "$p"; then echo "$p"; exit 0; fi
done
root=$( (pyenv root 2>/dev/null) || echo "$HOME/.pyenv")
for p in $(ls -d "$root"/versions/3.1[2-9]* "$root"/versions/3.[2-9]* 2>/dev/null | sort -V); do
  if ok "$p/bin/python3"; then echo "$p/bin/python3"; exit 0; fi
done
for p in /usr/local/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.13 /usr/bin/python3.13; do
  if ok "$p"; then echo "$p"; exit 0; fi
done
if command -v uv >/dev/null 2>&1; then
  p=$(uv python find '>=3.12' 2>/dev/null) && ok "$p" && { echo "$p"; exit 0; }
fi
echo "No Python >= 3.12 found. Install one (e.g. 'pyenv install 3.12') or set PUNA_PYTHON." >&2
exit 1
