#!/bin/sh
# render IN OUT: write the Alertmanager config IN to OUT with its placeholder
# webhook URL replaced by $AGENT_TEAMS_ALERT_WEBHOOK_URL (unset or empty: kept).
#
# Alertmanager cannot read a URL from the environment, and the image's
# Alertmanager (0.28) could read one from a file but Debian's (0.25, which the
# tests validate with) cannot, so the URL is written into the config itself.
# The replacement is literal (awk index/substr, the URL passed through the
# environment): no character of it is taken for regex or escape syntax. A URL
# with a double quote, backslash or newline would break out of the YAML string
# (none belongs unencoded in a URL), so it is refused.
set -eu

PLACEHOLDER='http://alert-webhook-not-configured.invalid/'
in=$1
out=$2
url=${AGENT_TEAMS_ALERT_WEBHOOK_URL:-$PLACEHOLDER}

case $url in
  *'"'* | *'\'* | *'
'*)
    echo "AGENT_TEAMS_ALERT_WEBHOOK_URL: a double quote, backslash or newline is not allowed" >&2
    exit 2
    ;;
esac
if [ "$(grep -c -F "$PLACEHOLDER" "$in")" != 1 ]; then
  echo "$in: expected the placeholder URL $PLACEHOLDER exactly once" >&2
  exit 2
fi

PLACEHOLDER=$PLACEHOLDER URL=$url awk '{
  i = index($0, ENVIRON["PLACEHOLDER"])
  if (i) $0 = substr($0, 1, i - 1) ENVIRON["URL"] substr($0, i + length(ENVIRON["PLACEHOLDER"]))
  print
}' "$in" > "$out"
