"""Local fakes of the model HTTP APIs (Gemini v1beta, OpenAI chat completions) for the model tier.

Real servers on loopback: the app's real clients (google-genai, LiteLLM) talk to them over HTTP.
"""
