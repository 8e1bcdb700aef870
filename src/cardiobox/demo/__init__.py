"""The guided tour (`cardiobox demo`): a demo site built from data shipped with cardiobox."""
