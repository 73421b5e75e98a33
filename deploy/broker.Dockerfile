# The MQTT broker image: Debian's mosquitto (2.0) and its clients (the health probe), run unprivileged with the TLS-only
# configuration `synergy mqtt-config` writes (docker-compose.yml's tls-init service puts it in
# the pki volume, at /pki/broker). Built by `make images` (deploy/images/build.sh), with BASE:
#   - with a container registry: debian:bookworm-slim, and mosquitto from Debian's mirror;
#   - without one: a Debian bookworm root made by debootstrap with mosquitto already in it.
# The same mosquitto either way (not eclipse-mosquitto's Alpine build): the TLS and ACL
# behaviour our integration tests check against Debian's broker is what runs here.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
LABEL org.opencontainers.image.title="synergy-broker" synergy.image="broker"
RUN { [ -x /usr/sbin/mosquitto ] && command -v mosquitto_sub >/dev/null; } \
 || (apt-get update && apt-get install -y --no-install-recommends mosquitto mosquitto-clients \
     && rm -rf /var/lib/apt/lists/*)
# uid/gid 1883 (the number eclipse-mosquitto uses too): tls-init hands the broker's key to it.
RUN groupmod --gid 1883 mosquitto && usermod --uid 1883 --gid 1883 mosquitto \
 && install -d -o mosquitto -g mosquitto /var/lib/mosquitto
USER mosquitto
EXPOSE 8883
# An MQTT client that does what the daemons do: a TLS handshake with a certificate of our CA
# (tls-init's client:broker-health, whose ACL entry reads the broker's uptime and nothing
# else), a CONNECT, a SUBSCRIBE, one message. A bare TCP connect would log a TLS error each time.
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 \
    CMD ["mosquitto_sub", "-h", "localhost", "-p", "8883", "--cafile", "/pki/broker/health/ca.pem", \
         "--cert", "/pki/broker/health/cert.pem", "--key", "/pki/broker/health/key.pem", \
         "-t", "$SYS/broker/uptime", "-C", "1", "-W", "4", "-i", "broker-health"]
CMD ["/usr/sbin/mosquitto", "-c", "/pki/broker/mosquitto.conf"]
