"""Base models (tiny, smollm2-135m, HF dirs, GGUF files, hub ids) and PEFT adapter loading."""
