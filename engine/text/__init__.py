"""Text models and text data: a built-in tokenizer and vocabulary, AG_NEWS-style CSV and
``text<TAB>label`` TSV readers, ``.vec`` word vectors, the BiLSTM classifier of reference seed 000 and
an optional Hugging Face BERT path (seed 002). Nothing here downloads."""

# One-line descriptions of the text sources, for the GUI's source pickers and tooltips.
MODEL_SOURCE_HELP = {
    "text_demo": "The built-in BiLSTM (seed 000's model) trained on the built-in 4-class news demo.",
    "hf": "A Hugging Face sequence classifier (e.g. BERT) from a local folder written by "
          "save_pretrained: config.json, model.safetensors or pytorch_model.bin, tokenizer files. "
          "Nothing is downloaded. Needs the optional 'bert' extra (transformers).",
}
DATA_SOURCE_HELP = {
    "text_demo": "The built-in 4-class news demo (generated; AG_NEWS CSV format), tokenized with the "
                 "model's vocabulary.",
    "text_csv": "AG_NEWS-format CSV (label 1-based, title, description): a folder with train.csv "
                "and test.csv (optional classes.txt), or one file split 80/20. Built-in tokenizer.",
    "text_tsv": "text<TAB>label lines (label 0-based): a folder with train and test/dev .tsv or .txt "
                "files (optional class.txt), or one file split 80/20. Built-in tokenizer.",
    "hf_tsv": "text<TAB>label lines read through the Hugging Face model's own tokenizer (for BERT).",
}
