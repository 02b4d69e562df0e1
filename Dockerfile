# bastion: the SSH gateway, as a container. The data dir (config, keys, database, recordings) is a volume:
#   docker run --rm -v bastion-data:/data bastion init --dir /data/setup   (once)
#   docker run -d -p 2222:2222 -v bastion-data:/data bastion
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/bastion --uid 10001 bastion \
    && mkdir -p /data && chown bastion /data

WORKDIR /opt/bastion
COPY pyproject.toml README.md ./
COPY bastion ./bastion
COPY policies ./policies
RUN pip install --no-cache-dir . && python -c "import bastion.paths as p; print(p.shipped_policies())"

USER bastion
VOLUME ["/data"]
ENV BASTION_CONFIG=/data/setup/bastion.yaml
EXPOSE 2222
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python -c "import socket; socket.create_connection(('127.0.0.1', 2222), 3).recv(64).startswith(b'SSH-2.0-') or exit(1)"
ENTRYPOINT ["bastion"]
CMD ["serve", "--listen", "0.0.0.0:2222"]
