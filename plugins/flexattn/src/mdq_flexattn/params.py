"""The plugin's registration data: operator and policy parameters, gate names. Light: registering
the plugin reads this module only, never the reward engine (so `mdq --help` imports nothing heavy)."""

from __future__ import annotations

MAX_TERM_LEN = 8  # the loader's limit: the design's widest window, max(U) = 8
DEFAULT_U = tuple(range(2, MAX_TERM_LEN + 1))  # every length a catalog term can have; the control state may narrow it
TERM_FEATURE = "term"
DEFAULT_TAU = 0.75
GATES = ("topic", "bm25", "jaccard")

OPERATOR = "flexattn"
# parameter: (admissible interval, default) of the `flexattn` operator
PARAMS = {"lambda_lex": ((0.0, 1.0), 0.30), "eta1": ((0.0, 10.0), 0.10), "eta2": ((0.0, 10.0), 1.0),
          "base": ((-1.0, 1.0), 0.0), "lambda_h": ((0.0, 1.0), 0.08), "lambda_p": ((0.0, 1.0), 0.10),
          "alpha_h": ((0.1, 4.0), 1.0), "alpha_p": ((0.1, 4.0), 1.0), "repeat": ((0.0, 1.0), 0.0),
          "rho": ((0.0, 1.0), 0.01), "idf_ceiling": ((0.5, 1.0), 0.9),
          # general words (tag `general`, or idf below the floor) earn general_weight x the reward of a term
          "general_weight": ((0.0, 1.0), 0.0), "idf_floor": ((0.0, 1.0), 0.55),
          # the topic gate's context fades by this factor per sentence without the topic
          "carry": ((0.0, 1.0), 0.85),
          # U: the allowed term lengths, one switch per length (all of 2..8 by default; U7 = 0 gives {2,3,4,5,6,8})
          **{f"U{n}": ((0.0, 1.0), float(n in DEFAULT_U)) for n in range(2, MAX_TERM_LEN + 1)}}

# parameter: (admissible interval, default); registered with the `table` length policy
POLICY_PARAMS = {"Lh_term": ((2, 6), 2), "Lh_word": ((2, 6), 3), "Lh_punct": ((2, 6), 4),
                 "Lp_min": ((3, 8), 3), "Lp_max": ((3, 8), 8)}

# the reward pipeline's routes and KPIs, read at registration (pipeline.py imports the model layer)
ROUTES = ("/v1/reward", "/get_reward")
KPIS = {"lexical": "higher", "term_density": "higher", "general_share": "lower"}
