# The app's image (not the sandbox's): the web UI, the agent and the executor's Kubernetes engine.
#   docker build -f deploy/kubernetes/app.Dockerfile -t registry.example.com/mcp-code-executor-app:1 .
# It runs from /app (settings, tools/ and skills/ are read from there) as uid 1000.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False
WORKDIR /app
COPY pyproject.toml README.md ./
COPY settings.py ./
COPY agent/ agent/
COPY executor/ executor/
COPY frontend/ frontend/
RUN pip install --no-cache-dir '.[kubernetes,postgres]'
COPY tools/ tools/
COPY skills/ skills/
USER 1000:1000
EXPOSE 7860
CMD ["python", "-m", "frontend.app"]
