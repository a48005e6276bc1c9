# One image for the three services; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/onexen
COPY pyproject.toml README.md ./
COPY onexen ./onexen
COPY services ./services
COPY simxen ./simxen
COPY stack ./stack
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/onexen --create-home onexen

USER onexen
# Bind to all interfaces inside the container; compose publishes only what it should.
ENV ONEXEN_LISTEN=0.0.0.0
EXPOSE 50051 50052 50053
CMD ["onexen-translator"]
