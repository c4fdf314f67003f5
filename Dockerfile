# mecharena designer environment as an OpenEnv server: docker build -t mecharena . && docker run -p 8000:8000 mecharena
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
COPY openenv.yaml ./
RUN pip install ".[server]"

# Run unprivileged; numba falls back to a cache under the home directory (site-packages is read-only).
RUN useradd --create-home mecharena
USER mecharena

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["mecharena", "serve", "--host", "0.0.0.0", "--port", "8000"]
