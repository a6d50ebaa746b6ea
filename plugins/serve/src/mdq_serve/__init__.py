"""mdq-serve: `mdq serve` runs registered pipelines under the live control state and analyses canaries live."""
