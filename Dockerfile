# kwh — container image: socat on port 8080 runs the kwh chain
# (/usr/share/kwh/kwh-handler) per connection, as uid 65532.
#
# NOT BUILT HERE: the machines this project is developed and tested on have
# no container engine, so this file has never been built by the suite.  It
# is kept small so that it is obviously right; tests/4003-deploy-docker.bats
# checks what can be checked without building it (the runtime packages
# come from share/kwh/runtime-packages, the command is the Deployment's).
# Build:  docker build -t kwh .
# Run:  docker run -p 8080:8080 -v /etc/kwh:/etc/kwh:ro kwh

FROM debian:12-slim AS build
WORKDIR /src
COPY share/kwh/install-deps share/kwh/install-deps
RUN KWH_DEPS=build sh share/kwh/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" \
 && make install DESTDIR=/out PREFIX=/usr \
 && sh share/kwh/runtime-packages /out/usr/bin/kwh-* > /runtime-packages

FROM debian:12-slim
# the packages of the shared libraries the tools load, as built above
COPY --from=build /runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      $(cat /tmp/runtime-packages) socat ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 8080
# -t 10: after the client half-closes, the chain keeps its whole budget;
# max-children bounds the concurrent deliveries.
CMD ["socat", "-t", "10", "TCP-LISTEN:8080,reuseaddr,fork,max-children=32", "EXEC:/usr/share/kwh/kwh-handler"]
