#!/usr/bin/env bash
# Starts the whole product on loopback: web, django-q2 worker, Gemini and Stripe emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}

# The emulators must answer before billing_setup and the worker need them.
export BUNCH_RUN_PORT=$PORT
# Prometheus multiprocess files of an earlier run would count into this one's /metrics.
rm -rf var/metrics
# The Gemini emulator writes the test root that signs its images' Content Credentials here
# at start-up; trusting it in development shows them as they would show for Google's.
export C2PA_TRUST_ANCHORS=${C2PA_TRUST_ANCHORS:-var/c2pa-emulator-root.pem}
key=$($PY manage.py seed_demo | tee /dev/stderr | tail -1)

cat <<MSG

  Bunch is starting on loopback.
    Dashboard:  http://127.0.0.1:${PORT}/        (sign in as owner@acme.test / bunch-demo-2026)
    Admin:      http://127.0.0.1:${PORT}/admin/  (admin@bunch.test / bunch-demo-2026)
    API docs:   http://127.0.0.1:${PORT}/api/docs/
    Demo key:   ${key}

    curl -H "Authorization: Bearer ${key}" http://127.0.0.1:${PORT}/api/v1/me

  Ctrl-C stops everything.

MSG
# Stripe: the emulator starts under honcho; billing_setup waits for it, sets up, and exits.
($PY manage.py billing_setup --wait 60 || echo "billing_setup failed; run it again") >&2 &
exec .venv/bin/honcho start -f Procfile
