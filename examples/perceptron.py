"""The perceptron tutorial, step for step, with the perceptron rule as gradient descent.

Data: the classic 10-row toy set. activation = bias + w1*x1 + w2*x2, weights start at 0.0,
prediction 1 if activation >= 0 else 0, learning rate 0.1, 5 epochs of online updates.

The rule w <- w + lr * (expected - predicted) * x is one SGD step on the loss
-(expected - predicted) * activation (see micrograd.losses.perceptron_loss): backward() computes
its gradient -(expected - predicted) * x and SGD subtracts lr times it.
First the tutorial's worked example: predictions with its hand-chosen weights [bias, w1, w2] =
[-0.1, 0.20653640140000007, -0.23418117710000003], one line "Expected=%d, Predicted=%d" per row
(all ten are right). Then the training run: per epoch, the sum of squared errors of the
predictions made before each update, then the final weights [bias, w1, w2].
"""
from micrograd.datasets import TOY_DATASET
from micrograd.losses import perceptron_loss
from micrograd.nn import Perceptron
from micrograd.optim import SGD

LEARNING_RATE = 0.1
EPOCHS = 5
HAND_CHOSEN_WEIGHTS = [-0.1, 0.20653640140000007, -0.23418117710000003]  # [bias, w1, w2]


def predict_with_hand_chosen_weights(rows):
    model = Perceptron(2)
    model.set_parameter_values(HAND_CHOSEN_WEIGHTS[1:] + HAND_CHOSEN_WEIGHTS[:1])  # w, then b
    for *x, expected in rows:
        print('Expected=%d, Predicted=%d' % (expected, model.predict(x)))


def train(rows, lr, epochs):
    model = Perceptron(2)  # weights and bias start at 0.0
    optimizer = SGD(model.parameters(), lr=lr)
    for epoch in range(epochs):
        sum_error = 0.0
        for *x, expected in rows:
            activation = model(x)
            predicted = model.threshold(activation)
            sum_error += (expected - predicted) ** 2
            optimizer.zero_grad()
            perceptron_loss(activation, expected, predicted).backward()
            optimizer.step()
        print(f'>epoch={epoch}, lrate={lr:.3f}, error={sum_error:.3f}')
    return model


if __name__ == '__main__':
    predict_with_hand_chosen_weights(TOY_DATASET)
    model = train(TOY_DATASET, LEARNING_RATE, EPOCHS)
    print([model.b.data] + [w.data for w in model.w])
