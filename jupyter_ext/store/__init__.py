"""The artifact store: model folders (the GGUF converted once, dummy-weight folders), cached
technique artifacts built with write-then-rename, and the offline text prompts are built
from. Sits on the base layer; knows nothing of recipes, engines or faces."""
