"""What a run publishes and how: the rows of each config (`rows`), the typed `meta` struct
(`meta`), the dataset card (`card`), the HTML report (`report`), the output folder and its
swap (`output`, `replace`), exports to TRL and LLaVA (`exports`) and the push to the Hub
(`hub`)."""
