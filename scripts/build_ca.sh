# Sourced by the Dockerfile's download steps (`. /tmp/build_ca.sh`, bind-mounted from here; sourced again after
# installing ca-certificates, to pick up the system bundle): when the optional BuildKit secret `ca` is mounted
# (docker build --secret id=ca,src=FILE.pem), point every downloader of the step at the system CA bundle plus that
# file, for builds behind a TLS-intercepting (corporate) proxy. Without the secret it does nothing.
#
# The combined bundle is a temporary file removed when the step's shell exits, and the secret itself is a mount:
# neither is ever part of an image layer. Each tool takes a CA bundle its own way:
#   apt            Acquire::https::CAInfo, through an extra config file named by APT_CONFIG (only https sources)
#   pip            PIP_CERT
#   uv             SSL_CERT_FILE (uv then uses that file instead of its bundled roots)
#   git            GIT_SSL_CAINFO (uv and pip run git for git+https:// requirements)
#   Python's ssl   SSL_CERT_FILE (urllib: Whisper, torch.hub, nltk, add-apt-repository); requests (unidic,
#                  huggingface_hub): REQUESTS_CA_BUNDLE; httplib2 (launchpadlib): HTTPLIB2_CA_CERTS
#   curl           CURL_CA_BUNDLE
secret="${BUILD_CA_SECRET:-/run/secrets/ca}"
if [ -s "$secret" ]; then
  if [ -z "${BUILD_CA_BUNDLE:-}" ]; then  # sourced again later in a step (after installing ca-certificates): reuse
    BUILD_CA_BUNDLE="$(mktemp /tmp/build-ca.XXXXXX.pem)"
    trap 'rm -f "$BUILD_CA_BUNDLE" "$BUILD_CA_BUNDLE.apt.conf"' EXIT
  fi
  # The system bundle first (absent before ca-certificates is installed), then the extra certificates.
  cat /etc/ssl/certs/ca-certificates.crt "$secret" > "$BUILD_CA_BUNDLE" 2>/dev/null ||
    cat "$secret" > "$BUILD_CA_BUNDLE"
  printf 'Acquire::https::CAInfo "%s";\n' "$BUILD_CA_BUNDLE" > "$BUILD_CA_BUNDLE.apt.conf"
  export BUILD_CA_BUNDLE APT_CONFIG="$BUILD_CA_BUNDLE.apt.conf" PIP_CERT="$BUILD_CA_BUNDLE" \
    SSL_CERT_FILE="$BUILD_CA_BUNDLE" REQUESTS_CA_BUNDLE="$BUILD_CA_BUNDLE" CURL_CA_BUNDLE="$BUILD_CA_BUNDLE" \
    GIT_SSL_CAINFO="$BUILD_CA_BUNDLE" HTTPLIB2_CA_CERTS="$BUILD_CA_BUNDLE"
  printf '[build-ca] extra CA certificates from the build secret "ca" in use for this step\n' >&2
fi
unset secret
