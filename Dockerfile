# kwh — container image: the resident server, kwh-handle --listen, on port
# 8080 as uid 65532, its settings read from the file of options the
# Deployment's ConfigMap mounts (re-read without a restart, kwh-handle(1)).
#
# BASE is the Debian image both stages start from (the default, or the same
# release built elsewhere: tests/4004-deploy-image.bats builds this file
# with buildah FROM a debootstrap root of the release it runs on).
# Build:  docker build -t kwh .   (or buildah bud --isolation chroot -t kwh .)
# Run:  docker run -p 8080:8080 -v /etc/kwh:/etc/kwh:ro kwh

ARG BASE=debian:12-slim
FROM ${BASE} AS build
WORKDIR /src
COPY share/kwh/install-deps share/kwh/install-deps
RUN KWH_DEPS=build sh share/kwh/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" \
 && make install DESTDIR=/out PREFIX=/usr \
 && sh share/kwh/runtime-packages /out/usr/bin/kwh-* > /runtime-packages

FROM ${BASE}
# the packages of the shared libraries the tools load, as built above
COPY --from=build /runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      $(cat /tmp/runtime-packages) ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && mkdir -p /var/cache/kwh /var/spool/kwh \
 && chown 65532:65532 /var/cache/kwh /var/spool/kwh
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 8080
# the Deployment's command (share/kubernetes/deployment.yaml)
CMD ["kwh-handle", "--listen", "0.0.0.0:8080", "--config", "/etc/kwh/config/kwh-handle.conf"]
