"""
Quickstart: FiBiNET on the Adult census data
============================================

Train :class:`sk_fibinet.FiBiNETClassifier` with its default parameters on the
bundled Adult data (official train file) and evaluate it on the official test
file. The DataFrame goes in as it is: categorical columns are detected from
their dtype, missing values are handled, numeric columns become fields too.
"""

# %%
import time

from sklearn.metrics import log_loss, roc_auc_score

from sk_fibinet import FiBiNETClassifier
from sk_fibinet.datasets import load_adult

X_train, y_train = load_adult(subset="train", return_X_y=True)
X_test, y_test = load_adult(subset="test", return_X_y=True)
print(f"train {X_train.shape}, test {X_test.shape}")

# %%
start = time.perf_counter()
clf = FiBiNETClassifier(random_state=0).fit(X_train, y_train)
fit_seconds = time.perf_counter() - start

proba = clf.predict_proba(X_test)[:, list(clf.classes_).index(">50K")]
auc = roc_auc_score(y_test == ">50K", proba)
loss = log_loss(y_test == ">50K", proba)

print(f"epochs run       {clf.n_iter_}")
print(f"fit time         {fit_seconds:.1f} s")
print(f"test ROC AUC     {auc:.4f}")
print(f"test log loss    {loss:.4f}")
print(f"test accuracy    {clf.score(X_test, y_test):.4f}")
print("ROC AUC >= 0.90: " + ("yes" if auc >= 0.90 else "NO"))
